"""Two replicas run the reminder job at the same moment (contract §10): each escalation still open
after `escalation_reminder` alerts the on-call numbers once more, once, whoever takes it.

Two `Transactions` on one database, each with engines of its own, are two replicas' stores;
their `remind` transactions race through `asyncio.gather`. The conditional `UPDATE … WHERE
reminded_at IS NULL RETURNING` lets one of them take each escalation.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sqlmodel import Session, col, select

from service.config import Settings
from service.conversations import escalations
from service.storage.conversation_tables import Escalation
from service.storage.models import ALERT, Message
from service.storage.transactions import Transactions
from tests.conftest import AppClient
from tests.helpers.client import post_completed
from tests.support import FakeClock, glow_in_utc, make_settings

ON_CALL = ["+14155550142", "+14155550143"]


def settings_with_on_call(database: str) -> Settings:
    glow = glow_in_utc(on_call_numbers=ON_CALL, escalation_reminder="15m")
    return make_settings(database, clinics={"glow": glow})


async def test_two_replicas_remind_each_open_escalation_once(
    make_client: Any, database: str, clock: FakeClock
) -> None:
    settings = settings_with_on_call(database)
    client: AppClient = await make_client(settings, clock=clock)
    await post_completed(client, {"id": "tr_1", "completed_at": clock.now().isoformat()})
    replicas = [Transactions.open(database), Transactions.open(database)]
    try:

        def opened(s: Session) -> None:
            message = s.exec(select(Message).order_by(col(Message.send_at))).first()
            assert message is not None
            for n in range(3):
                s.add(
                    Escalation(
                        id=f"esc_{n}",
                        clinic_id="glow",
                        message_id=message.id,
                        level="urgent",
                        reply="swollen",
                        opened_at=clock.now() - timedelta(minutes=20),
                    )
                )

        await replicas[0].write(opened)
        now = clock.now()
        await asyncio.gather(
            *(t.write(lambda s: escalations.remind(s, settings, now=now)) for t in replicas)
        )

        def reminders(s: Session) -> list[tuple[str, str]]:
            rows = s.exec(select(Message).where(Message.kind == ALERT)).all()
            return sorted((m.step, m.phone) for m in rows)

        found = await replicas[1].read(reminders)
    finally:
        for t in replicas:
            await t.close()
    assert found == sorted((f"esc_{n}", p) for n in range(3) for p in ON_CALL)
