"""Contract §11: what a clinic's system is told, written in the transaction of the change.

The real dispatcher and return path, real databases, the real twilio client against the fake
Twilio; the notifications are read from the outbox as the deliverer would post them.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pytest_aiohttp import AiohttpServer
from sqlmodel import col, select

from service.config import Settings
from service.conversations import inbound
from service.delivery.callbacks import Outcome
from service.delivery.dispatch import Dispatcher
from service.delivery.return_path import ReturnPath
from service.delivery.sms.twilio import TwilioSender
from service.intake.ingest import Ingest
from service.observability.metrics import Metrics
from service.storage.models import Message
from service.storage.notices import Audience
from service.storage.outbox import Notification
from service.storage.transactions import Transactions
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, serve
from tests.helpers.events import completed_event, encode
from tests.support import PHONE, SECRET, FakeClock, glow_in_utc
from tests.support import make_settings as settings_for

HOOK = {"url": "http://127.0.0.1:9/hooks", "secrets": [SECRET]}


@dataclass
class World:
    clock: FakeClock
    fake: FakeTwilio
    settings: Settings
    ingest: Ingest
    dispatcher: Dispatcher
    return_path: ReturnPath

    async def plan(self) -> list[Message]:
        """A treatment completed two hours ago (its first step due now); its messages."""
        completed = (self.clock.now() - timedelta(hours=2)).isoformat()
        event = completed_event(treatment={"completed_at": completed})
        reply = await self.ingest.handle("glow", "wh_" + secrets.token_hex(8), encode(event))
        assert reply.status == 202
        return await self.dispatcher.transactions.read(
            lambda s: list(s.exec(select(Message).order_by(col(Message.send_at))).all())
        )

    async def notifications(self) -> list[dict[str, Any]]:
        """Every notification written, oldest first, as it will be posted."""
        rows = await self.dispatcher.transactions.read(
            lambda s: s.exec(select(Notification).order_by(col(Notification.created_at))).all()
        )
        assert all(r.state == "pending" and r.clinic_id == "glow" for r in rows)
        return [json.loads(r.body) for r in rows]


async def make_world(
    database: str, aiohttp_server: AiohttpServer, **notifications: Any
) -> AsyncIterator[World]:
    fake = FakeTwilio(callbacks=False)
    base = await serve(aiohttp_server, fake)
    glow = glow_in_utc(notifications=notifications) if notifications else glow_in_utc()
    settings = settings_for(
        database,
        sms={"backend": "twilio"},
        twilio={"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, "api_base_url": base},
        clinics={"glow": glow},
    )
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    transactions = Transactions.open(settings.database.url)
    sender = TwilioSender(
        account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, api_base_url=base, timeout=1.0
    )
    dispatcher = Dispatcher(
        settings=settings,
        transactions=transactions,
        sender=sender,
        clock=clock,
        instance="test-1",
    )
    path = ReturnPath(
        settings=settings,
        transactions=transactions,
        clock=clock,
        metrics=Metrics(),
        handle_reply=lambda s, reply, now: inbound.handle(s, settings, reply, now=now),
    )
    ingest = Ingest(settings=settings, transactions=transactions, clock=clock)
    yield World(clock, fake, settings, ingest, dispatcher, path)
    await path.close()
    await sender.aclose()
    await transactions.close()


@pytest.fixture
async def world(database: str, aiohttp_server: AiohttpServer) -> AsyncIterator[World]:
    async for w in make_world(database, aiohttp_server, **HOOK):
        yield w


class TestMessages:
    async def test_a_permanent_failure_is_notified_with_the_message_as_the_clinic_knows_it(
        self, world: World
    ) -> None:
        """21211 fails the message: one message.failed, with the clinic's ids, the code, and
        the number masked to its last four digits."""
        world.fake.behaviours[PHONE] = "error:21211"
        first = (await world.plan())[0]
        world.clock.current = first.send_at
        await world.dispatcher.dispatch_due()
        [notification] = await world.notifications()
        assert notification["type"] == "message.failed"
        message = notification["data"]["message"]
        assert message == {
            "id": first.id,
            "step": "tonight",
            "kind": "aftercare",
            "treatment_id": message["treatment_id"],
            "patient_id": "pt_77",
            "to": "•••••••0123",
            "status": "failed",
            "error_code": 21211,
            "reason": message["reason"],
        }
        assert message["treatment_id"].startswith("tr_") and "21211" in message["reason"]
        assert PHONE not in json.dumps(notification)

    async def test_an_unsubscribed_number_is_notified_as_opted_out_of_everything(
        self, world: World
    ) -> None:
        """21610: the failed message and patient.opted_out (scope all, the clinic's patient
        ids, the number masked), both in the outcome's transaction."""
        world.fake.behaviours[PHONE] = "error:21610"
        first = (await world.plan())[0]
        world.clock.current = first.send_at
        await world.dispatcher.dispatch_due()
        found = {n["type"]: n["data"] for n in await world.notifications()}
        assert set(found) == {"message.failed", "patient.opted_out"}
        assert found["message.failed"]["message"]["error_code"] == 21610
        assert found["patient.opted_out"] == {
            "patient_ids": ["pt_77"],
            "phone": "•••••••0123",
            "scope": "all",
        }

    async def test_a_message_found_past_its_expiry_at_claim_time_is_notified_expired(
        self, world: World
    ) -> None:
        """Downtime past expires_after: message.expired, with the reason, nothing sent."""
        first = (await world.plan())[0]
        world.clock.current = first.expires_at + timedelta(seconds=1)
        await world.dispatcher.dispatch_due()
        [notification] = await world.notifications()
        assert notification["type"] == "message.expired"
        assert notification["data"]["message"]["id"] == first.id
        assert notification["data"]["message"]["reason"] == "could not be sent before its expiry"
        assert world.fake.attempts == []

    async def test_rate_limited_until_expiry_is_notified_expired_once(self, world: World) -> None:
        """Retries that run into the expiry end in one message.expired."""
        world.fake.behaviours[PHONE] = "ratelimit:1000"
        first = (await world.plan())[0]
        world.clock.current = first.expires_at - timedelta(milliseconds=100)
        await world.dispatcher.dispatch_due()
        world.clock.current = first.expires_at + timedelta(hours=1)
        await world.dispatcher.dispatch_due()
        assert [n["type"] for n in await world.notifications()] == ["message.expired"]

    async def test_an_undelivered_callback_is_notified_and_a_repeat_is_not(
        self, world: World
    ) -> None:
        """Twilio's `undelivered` (30003): message.undelivered with the code; the same
        callback again changes nothing and notifies nothing."""
        first = (await world.plan())[0]
        world.clock.current = first.send_at
        await world.dispatcher.dispatch_due()
        sid = world.fake.messages[0].sid
        for expected in (Outcome.APPLIED, Outcome.STALE):
            outcome = await world.return_path.status(sid=sid, status="undelivered", code=30003)
            assert outcome is expected
        [notification] = await world.notifications()
        assert notification["type"] == "message.undelivered"
        assert notification["data"]["message"]["error_code"] == 30003

    async def test_delivered_is_not_notified_unless_the_clinic_lists_it(self, world: World) -> None:
        """The default types leave out message.delivered."""
        first = (await world.plan())[0]
        world.clock.current = first.send_at
        await world.dispatcher.dispatch_due()
        sid = world.fake.messages[0].sid
        await world.return_path.status(sid=sid, status="delivered", code=None)
        assert await world.notifications() == []


async def test_delivered_is_notified_when_the_clinic_lists_it(
    database: str, aiohttp_server: AiohttpServer
) -> None:
    """`events = ["message.delivered"]`: a delivered callback is notified, and only that."""
    async for world in make_world(database, aiohttp_server, **HOOK, events=["message.delivered"]):
        world.fake.behaviours[PHONE] = "error:21211"
        messages = await world.plan()
        world.clock.current = messages[0].send_at
        await world.dispatcher.dispatch_due()  # failed: not asked for
        world.fake.behaviours[PHONE] = ""
        world.clock.current = messages[1].send_at
        await world.dispatcher.dispatch_due()
        sid = world.fake.messages[0].sid
        await world.return_path.status(sid=sid, status="delivered", code=None)
        [notification] = await world.notifications()
        assert notification["type"] == "message.delivered"
        assert notification["data"]["message"]["id"] == messages[1].id


async def test_clinics_without_an_endpoint_look_nothing_up_and_write_nothing(
    database: str, aiohttp_server: AiohttpServer
) -> None:
    """No clinic listens: the audience is empty (the hot paths test only that) and a failure,
    an expiry and an undelivered callback write no notification."""
    async for world in make_world(database, aiohttp_server):
        assert not world.dispatcher.recorder.audience.statuses
        assert not Audience(world.settings).by_type["patient.opted_out"]
        world.fake.behaviours[PHONE] = "error:21610"
        messages = await world.plan()
        world.clock.current = messages[0].send_at
        await world.dispatcher.dispatch_due()
        assert await world.notifications() == []
