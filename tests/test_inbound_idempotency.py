"""Twilio's retries change nothing (contract §14): a text is kept once per MessageSid, and the same
signed request posted again — one after another, all at once, or after the ACK — gets the same
TwiML and adds no reply row, escalation, alert or notification. The world is
tests/fixtures/conversations.py's (the real app over HTTP, SQLite and PostgreSQL).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import sqlalchemy as sa
from pytest_aiohttp import AiohttpClient
from sqlmodel import Session

from service.storage.conversation_tables import ESCALATION
from service.storage.inbound_rows import INBOUND
from service.storage.models import ALERT
from service.storage.tables import MESSAGE
from service.web.app import create_app
from service.web.keys import SETTINGS, TRANSACTIONS
from tests.fakes.twilio import message_sid
from tests.fixtures.conversations import NURSE, Conversation, Start, alerted, start

__all__ = ["start"]  # the fixture, from tests/fixtures/conversations.py

NURSE_2 = "+14155550143"
M = MESSAGE.c


async def counts(c: Conversation) -> dict[str, Any]:
    """Replies kept, escalations, alert rows by number, notifications by type."""

    def read(s: Session) -> dict[str, Any]:
        conn = s.connection()

        def count(table: sa.Table) -> int:
            return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())

        alerts = conn.execute(sa.select(M.phone).where(M.kind == ALERT)).scalars()
        return {
            "inbound": count(INBOUND),
            "escalations": count(ESCALATION),
            "alerts": Counter(alerts),
        }

    found: dict[str, Any] = await c.client.app[TRANSACTIONS].read(read)
    found["notifications"] = Counter(n["type"] for n in await c.notifications())
    return found


ONE_ESCALATION = {
    "inbound": 1,
    "escalations": 1,
    "alerts": Counter({NURSE: 1, NURSE_2: 1}),
    "notifications": Counter({"checkin.replied": 1, "checkin.escalated": 1}),
}


class TestOneMessageSid:
    async def test_posted_three_times_it_is_kept_and_escalated_once(self, start: Start) -> None:
        """The same "3" three times in a row: the same answer each time, one reply row, one
        escalation, one alert to each on-call number, one notification of each type."""
        c = await start(on_call_numbers=[NURSE, NURSE_2])
        await c.checked_in()
        sid = message_sid()
        answers = [await c.text("3", sid=sid) for _ in range(3)]
        assert len(set(answers)) == 1 and "We have alerted Glow" in answers[0]
        assert await counts(c) == ONE_ESCALATION
        await alerted(c, 1)
        await asyncio.sleep(0.3)  # a second alert would be on its way by now
        assert len(c.to(NURSE)) == len(c.to(NURSE_2)) == 1

    async def test_posted_three_times_at_once_it_is_kept_and_escalated_once(
        self, start: Start
    ) -> None:
        """Three copies in flight together (Twilio retrying while the first still waits)."""
        c = await start(on_call_numbers=[NURSE, NURSE_2])
        await c.checked_in()
        sid = message_sid()
        answers = await asyncio.gather(*(c.text("3", sid=sid) for _ in range(3)))
        assert len(set(answers)) == 1 and "We have alerted Glow" in answers[0]
        assert await counts(c) == ONE_ESCALATION

    async def test_posted_again_after_the_ack_it_opens_nothing(self, start: Start) -> None:
        """After the nurse's ACK closed the escalation, Twilio's late retry of the "3" is
        answered as before and opens no second escalation; the ACK's retry is answered as the
        ACK was and acknowledges nothing else."""
        c = await start(on_call_numbers=[NURSE, NURSE_2])
        await c.checked_in()
        sid, ack_sid = message_sid(), message_sid()
        first = await c.text("3", sid=sid)
        acked = await c.text("ACK", sender=NURSE, sid=ack_sid)
        assert "Acknowledged: Ana" in acked
        assert await c.text("3", sid=sid) == first
        assert await c.text("ACK", sender=NURSE, sid=ack_sid) == acked
        assert await counts(c) == {**ONE_ESCALATION, "inbound": 2}
        assert (await c.escalations(state="open"))["escalations"] == []

    async def test_a_stop_posted_twice_notifies_once(self, start: Start) -> None:
        """A STOP's retry answers the same confirmation and tells the clinic nothing new."""
        c = await start()
        await c.plan(due_in=3600)
        sid = message_sid()
        assert await c.text("STOP", sid=sid) == await c.text("STOP", sid=sid)
        found = await counts(c)
        assert found["inbound"] == 1
        assert found["notifications"] == Counter({"patient.opted_out": 1})

    async def test_retries_are_counted_apart_from_replies(self, start: Start) -> None:
        """/metrics counts a retry under aftercare_replies_skipped_total{reason="retry"}."""
        c = await start()
        sid = message_sid()
        for _ in range(3):
            await c.text("thanks", sid=sid)
        metrics = await (await c.client.get("/metrics")).text()
        assert 'aftercare_replies_skipped_total{reason="retry"} 2.0' in metrics
        assert 'aftercare_replies_total{keyword="none"} 1.0' in metrics

    async def test_two_replicas_given_one_sid_at_once_keep_it_once(
        self, start: Start, aiohttp_client: AiohttpClient
    ) -> None:
        """Twilio's retry reaching another replica while the first still writes: the second
        waits on the unique index, then answers what the first did (no unique violation, no
        500); one row, one escalation."""
        c = await start(on_call_numbers=[NURSE, NURSE_2])
        await c.checked_in()
        other = Conversation(
            await aiohttp_client(create_app(c.client.app[SETTINGS])), c.fake, c.base
        )
        sid = message_sid()
        answers = await asyncio.gather(
            *(replica.text("3", sid=sid) for replica in (c, other, c, other))
        )
        assert len(set(answers)) == 1 and "We have alerted Glow" in answers[0]
        assert await counts(c) == ONE_ESCALATION
