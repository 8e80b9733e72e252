"""The return path (issue 12): status callbacks and replies written by group commit, in few
transactions, applied once and in order per message, without holding up the sends.

The real app sends through the real twilio client to the fake Twilio, which posts every
status change after creation (`sending`, `sent`, `delivered`) signed as Twilio does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlmodel import Session, col, select

from service.delivery.callbacks import Outcome
from service.delivery.return_path import CALLBACK_BATCH
from service.storage.models import Message, MessageHistory, OptOut, ProviderStatus
from service.web.keys import RETURN_PATH, TRANSACTIONS
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, sign_twilio
from tests.fixtures.twilio_hooks import Service, first_message, sent_plan, start
from tests.processes import until_async as until

__all__ = ["start"]  # the fixture, from tests/fixtures/twilio_hooks.py


@contextmanager
def transactions(service: Service) -> Iterator[list[int]]:
    """How many transactions the service's writer began inside the block (one-item list)."""
    engine = service.client.app[TRANSACTIONS].engine
    count = [0]

    def begun(_conn: Any) -> None:
        count[0] += 1

    event.listen(engine, "begin", begun)
    try:
        yield count
    finally:
        event.remove(engine, "begin", begun)


async def histories(service: Service) -> dict[str, list[str]]:
    """Every sent message's history statuses, oldest first."""

    def _tx(s: Session) -> Sequence[tuple[str, str]]:
        rows = (
            s.exec(
                select(MessageHistory.message_id, MessageHistory.status)
                .join(Message, col(Message.id) == col(MessageHistory.message_id))
                .where(col(Message.provider_id).is_not(None))
                .order_by(col(MessageHistory.id))
            )
        ).all()
        return rows

    rows = await service.client.app[TRANSACTIONS].read(_tx)
    found: dict[str, list[str]] = {}
    for message_id, status in rows:
        found.setdefault(message_id, []).append(status)
    return found


async def kept(service: Service) -> int:
    def _tx2(s: Session) -> int:
        return int((s.exec(select(sa.func.count()).select_from(ProviderStatus))).one())

    count: int = await service.client.app[TRANSACTIONS].read(_tx2)
    return count


async def plan_many(service: Service, n: int, *, due_in: float) -> list[dict[str, Any]]:
    """`n` treatments of `n` patients, each with a first message due in `due_in` s."""
    plans: list[dict[str, Any]] = []
    for start_at in range(0, n, 25):
        plans += await asyncio.gather(
            *(
                service.plan(due_in=due_in, patient={"id": f"pt_{i}", "phone": f"+1415666{i:04d}"})
                for i in range(start_at, min(n, start_at + 25))
            )
        )
    return plans


class TestCallbacks:
    async def test_a_burst_applies_every_callback_once_and_in_order(self, start: Any) -> None:
        """300 sends; the fake posts sending, sent, delivered for each: every message ends
        delivered with sent then delivered once each, in far fewer transactions than
        callbacks."""
        service = await start(callbacks=True)
        with transactions(service) as begun:
            await plan_many(service, 300, due_in=0)

            async def all_delivered() -> bool:
                return len(service.fake.callbacks_sent) == 900

            await until(all_delivered, timeout=60)
        assert {code for *_, code in service.fake.callbacks_sent} == {200}
        found = await histories(service)
        assert len(found) == 300
        assert all(h == ["scheduled", "sending", "sent", "delivered"] for h in found.values())
        assert await kept(service) == 600  # `sending` adds nothing and writes nothing
        # One per callback would be 600 on top of the events', claims' and outcomes'.
        assert begun[0] < 600

    async def test_callbacks_for_one_sid_in_one_batch_apply_in_arrival_order(
        self, start: Any
    ) -> None:
        """`sent` and `delivered` in one batch: both applied, in order; `delivered` then a
        late `sent` in one batch: the late one changes nothing."""
        service = await start()
        plan, sid = await sent_plan(service)
        path = service.client.app[RETURN_PATH]
        late = await asyncio.gather(
            path.status(sid=sid, status="delivered", code=None),
            path.status(sid=sid, status="sent", code=None),
            path.status(sid=sid, status="delivered", code=None),
        )
        assert list(late) == [Outcome.APPLIED, Outcome.STALE, Outcome.STALE]
        first = await first_message(service, plan)
        assert [h["status"] for h in first["history"]] == [
            "scheduled",
            "sending",
            "sent",
            "delivered",
        ]

    async def test_undelivered_after_sent_in_one_batch_keeps_its_code(self, start: Any) -> None:
        service = await start()
        plan, sid = await sent_plan(service)
        path = service.client.app[RETURN_PATH]
        await asyncio.gather(
            path.status(sid=sid, status="sent", code=None),
            path.status(sid=sid, status="undelivered", code=30003),
        )
        first = await first_message(service, plan)
        assert (first["status"], first["error_code"]) == ("undelivered", 30003)

    async def test_early_callbacks_are_kept_and_applied_when_the_sid_is_recorded(
        self, start: Any
    ) -> None:
        """Twilio's create answer comes 1 s late: sent and delivered arrive first, are kept,
        and are applied in order when the answer is recorded."""
        service = await start(callbacks=True)
        service.fake.behaviours["+14156660001"] = "lateanswer:1"
        plan = await service.plan(due_in=0, patient={"id": "pt_1", "phone": "+14156660001"})

        async def delivered() -> bool:
            return bool((await first_message(service, plan))["status"] == "delivered")

        await until(delivered)
        assert [c[1] for c in service.fake.callbacks_sent] == ["sending", "sent", "delivered"]
        history = (await first_message(service, plan))["history"]
        assert [h["status"] for h in history] == ["scheduled", "sending", "sent", "delivered"]

    async def test_1000_queued_callbacks_take_few_transactions_and_sends_go_first(
        self, start: Any, frozen_heap: None
    ) -> None:
        """1,000 callbacks at once are a handful of transactions, and a message falling due
        while they are queued is still sent on time."""
        service = await start()
        plan = (await plan_many(service, 1, due_in=0.6))[0]
        due = datetime.fromisoformat(plan["messages"][0]["send_at"]).timestamp()
        path = service.client.app[RETURN_PATH]
        await asyncio.sleep(max(0.0, due - time.time() - 0.05))
        with transactions(service) as begun:
            queued = [
                asyncio.create_task(path.status(sid=f"SM{i:032d}", status="delivered", code=None))
                for i in range(1000)
            ]

            async def sent() -> bool:
                return bool(service.fake.attempts)

            await until(sent, timeout=10)
            late = service.fake.attempts[0]["at"] - due
            assert set(await asyncio.gather(*queued)) == {Outcome.EARLY}
        assert late < 0.5, f"sent {late:.3f} s late behind 1,000 callbacks"
        # A write per batch of up to CALLBACK_BATCH (and the send's claim and outcome); one
        # per callback would be 1,000.
        assert begun[0] <= 1000 // CALLBACK_BATCH + 10
        assert await kept(service) == 1000

    async def test_unknown_sid_answers_200_and_a_bad_signature_writes_nothing(
        self, start: Any
    ) -> None:
        service = await start()
        params = {
            "MessageSid": "SM" + "e" * 32,
            "MessageStatus": "delivered",
            "AccountSid": ACCOUNT_SID,
        }
        forged = sign_twilio(AUTH_TOKEN, "http://evil.example/v1/twilio/status", params)
        response = await service.twilio_post("/v1/twilio/status", params, signature=forged)
        assert response.status == 403
        assert await kept(service) == 0
        assert (await service.status("SM" + "e" * 32, "delivered")).status == 200
        assert (await service.status("SM" + "e" * 32, "sending")).status == 200
        assert await kept(service) == 1  # the delivered one, kept in case its sid comes

    async def test_metrics_count_callbacks_and_the_writer_queues(self, start: Any) -> None:
        service = await start()
        _, sid = await sent_plan(service)
        await service.status(sid, "sending")
        await service.status(sid, "delivered")
        text = await (await service.client.get("/metrics")).text()
        assert 'aftercare_callbacks_total{outcome="applied",status="delivered"} 1.0' in text
        assert 'aftercare_callbacks_total{outcome="ignored",status="sending"} 1.0' in text
        assert "aftercare_callback_seconds_count 1.0" in text
        assert 'aftercare_writer_queue{queue="callbacks"} 0.0' in text


class TestReplies:
    async def test_concurrent_stops_match_one_by_one_in_few_transactions(self, start: Any) -> None:
        """40 numbers say STOP at once: each opted out, its messages cancelled, each answered
        the confirmation, in a few transactions."""
        service = await start()
        await plan_many(service, 40, due_in=3600)
        alone = await (await service.text("STOP", sender="+14156660000")).text()
        with transactions(service) as begun:
            answers = await asyncio.gather(
                *(service.text("STOP", sender=f"+1415666{i:04d}") for i in range(1, 40))
            )
            texts = [await a.text() for a in answers]
        assert texts == [alone] * 39 and "You will get no more texts" in alone
        assert begun[0] < 20

        def _tx3(s: Session) -> Sequence[str]:
            stopped = s.exec(select(OptOut.phone)).all()
            return stopped

        stopped = await service.client.app[TRANSACTIONS].read(_tx3)
        assert len(stopped) == 40
        assert {m["status"] for m in await service.messages("glow")} == {"cancelled"}
