"""Merging (docs/merging.md): a patient's messages at one clinic due within `sms.merge_window`
of the earliest go as one text at the earliest's time, each keeping its row and history.

From outside: the real app on a fresh database of each kind (its timers stopped, so only the
test's dispatchers send, on a fake clock), signed events and Twilio webhooks through HTTP, the
read API, and what the fake Twilio server records through the real twilio client.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient, AiohttpServer
from sqlmodel import col, select

from service.config import Settings
from service.delivery.dispatch import Dispatcher
from service.storage.models import Message
from service.storage.outbox import Notification
from service.web.app import create_app
from service.web.keys import DISPATCHER, TIMERS, TRANSACTIONS
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, serve, sign_twilio
from tests.helpers.events import completed_event, encode, signed
from tests.support import PHONE, SECRET, TOKEN, FakeClock, glow_in_utc, make_settings

FOOTER = "Reply STOP to opt out."
HOOK = {"url": "http://127.0.0.1:9/hooks", "secrets": [SECRET]}
# Three steps: two 15 s apart, a third a minute after the first (beyond a 30 s window).
MERGE = {
    "title": "Merge",
    "steps": [
        {"key": "tonight", "kind": "aftercare", "after": "2h", "text": "First, {first_name}."},
        {"key": "serum", "kind": "serum", "after": "7215s", "text": "Serum now."},
        {"key": "later", "kind": "checkin", "after": "7260s", "text": "How is it going?"},
    ],
}


@dataclass
class Merging:
    client: TestClient[Any, Any]
    fake: FakeTwilio
    clock: FakeClock
    settings: Settings

    @property
    def dispatcher(self) -> Dispatcher:
        dispatcher: Dispatcher = self.client.app[DISPATCHER]
        return dispatcher

    def replica(self, instance: str, *, room: int) -> Dispatcher:
        """Another dispatcher on the same database, as another replica, with room for `room`
        sends at a time (so it claims `2 * room` at most)."""
        mine = self.dispatcher
        scheduler = mine.settings.scheduler.model_copy(update={"max_concurrent_sends": room})
        return Dispatcher(
            settings=mine.settings.model_copy(update={"scheduler": scheduler}),
            transactions=mine.transactions,
            sender=mine.sender,
            clock=self.clock,
            instance=instance,
        )

    async def plan(self, *, completed_at: datetime | None = None, **overrides: Any) -> str:
        """Post a treatment.completed of protocol "merge" (its first step due now unless
        `completed_at` says otherwise); the treatment's id."""
        completed = completed_at or self.clock.now() - timedelta(hours=2)
        treatment = {"protocol": "merge", "completed_at": completed.isoformat()}
        treatment.update(overrides.pop("treatment", {}))
        overrides.setdefault("patient", {}).setdefault("timezone", "UTC")
        raw = encode(completed_event(treatment=treatment, **overrides))
        response = await self.client.post("/v1/clinics/glow/events", data=raw, headers=signed(raw))
        assert response.status == 202, await response.text()
        return str((await response.json())["treatment"]["id"])

    async def read(self, treatment_id: str) -> list[dict[str, Any]]:
        """The treatment's messages as the read API shows them, in plan order."""
        response = await self.client.get(
            f"/v1/clinics/glow/treatments/{treatment_id}",
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert response.status == 200
        messages: list[dict[str, Any]] = (await response.json())["messages"]
        return messages

    async def twilio(self, path: str, params: dict[str, str]) -> int:
        url = self.settings.server.public_base_url + path
        sig = sign_twilio(AUTH_TOKEN, url, params)
        response = await self.client.post(path, data=params, headers={"X-Twilio-Signature": sig})
        return response.status

    async def status(self, sid: str, status: str) -> None:
        params = {"MessageSid": sid, "MessageStatus": status, "AccountSid": ACCOUNT_SID}
        assert await self.twilio("/v1/twilio/status", params) == 200

    async def text(self, body: str) -> None:
        params = {
            "MessageSid": "SM" + secrets.token_hex(16),
            "From": PHONE,
            "To": self.settings.clinics["glow"].from_number,
            "Body": body,
            "AccountSid": ACCOUNT_SID,
        }
        assert await self.twilio("/v1/twilio/inbound", params) == 200

    async def notified(self) -> list[tuple[str, str]]:
        """(type, message id) of every message notification written."""
        rows = await self.client.app[TRANSACTIONS].read(
            lambda s: s.exec(select(Notification).order_by(col(Notification.created_at))).all()
        )
        bodies = [json.loads(r.body) for r in rows]
        return [(b["type"], b["data"]["message"]["id"]) for b in bodies if "message" in b["data"]]

    async def set_kind(self, message_id: str, kind: str) -> None:
        def change(s: Any) -> None:
            s.connection().execute(
                sa.update(Message).where(Message.id == message_id).values(kind=kind)  # type: ignore[arg-type]
            )

        await self.client.app[TRANSACTIONS].write(change)


Start = Callable[..., Awaitable[Merging]]


@pytest.fixture
async def start(
    database: str, aiohttp_server: AiohttpServer, aiohttp_client: AiohttpClient
) -> AsyncIterator[Start]:
    async def run(window: str = "30s", *, notified: bool = False) -> Merging:
        fake = FakeTwilio(callbacks=False)
        base = await serve(aiohttp_server, fake)
        settings = make_settings(
            database,
            sms={"backend": "twilio", "merge_window": window},
            twilio={
                "account_sid": ACCOUNT_SID,
                "auth_token": AUTH_TOKEN,
                "api_base_url": base,
                "request_timeout": "1s",
            },
            clinics={"glow": glow_in_utc(**({"notifications": HOOK} if notified else {}))},
            protocols={"merge": MERGE},
        )
        clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
        client = await aiohttp_client(create_app(settings, clock=clock))
        await client.app[TIMERS].stop(timeout=5)  # only the test's dispatchers send
        return Merging(client, fake, clock, settings)

    yield run


def _detail(message: dict[str, Any], status: str) -> str:
    return str(next(h["detail"] for h in message["history"] if h["status"] == status))


class TestMerging:
    async def test_two_steps_15s_apart_go_as_one_text_and_a_callback_moves_both(
        self, start: Start
    ) -> None:
        merging = await start("30s")
        treatment = await merging.plan()
        await merging.dispatcher.dispatch_due()
        [sent] = merging.fake.messages  # the third, a minute on, is not merged
        assert sent.body == f"First, Ana.\n\nSerum now.\n{FOOTER}"
        first, serum, later = await merging.read(treatment)
        assert (first["status"], serum["status"], later["status"]) == ("sent", "sent", "scheduled")
        assert first["provider_id"] == sent.sid and first["merged_into"] is None
        assert serum["merged_into"] == first["id"] and serum["provider_id"] is None
        assert _detail(serum, "sent").startswith(f"merged into {first['id']}")
        assert _detail(serum, "sending") == f"claimed by {merging.dispatcher.instance}, " + (
            f"attempt 1, merged into {first['id']}"
        )
        # The lead records what the text cost; its part 0, so sums over messages are the bill.
        assert (first["encoding"], first["segments"]) == ("GSM-7", 1)
        assert (serum["encoding"], serum["segments"]) == ("GSM-7", 0)

        await merging.status(sent.sid, "delivered")
        first, serum, _ = await merging.read(treatment)
        assert (first["status"], serum["status"]) == ("delivered", "delivered")
        assert [h["status"] for h in serum["history"]] == [
            "scheduled",
            "sending",
            "sent",
            "delivered",
        ]

    async def test_an_undelivered_callback_is_notified_for_every_part(self, start: Start) -> None:
        merging = await start("30s", notified=True)
        treatment = await merging.plan()
        await merging.dispatcher.dispatch_due()
        [sent] = merging.fake.messages
        await merging.status(sent.sid, "undelivered")
        first, serum, _ = await merging.read(treatment)
        assert (first["status"], serum["status"]) == ("undelivered", "undelivered")
        assert sorted(await merging.notified()) == sorted(
            [("message.undelivered", first["id"]), ("message.undelivered", serum["id"])]
        )

    async def test_the_segments_metric_counts_a_merged_text_once_by_its_leads_kind(
        self, start: Start
    ) -> None:
        merging = await start("30s")
        await merging.plan()
        await merging.dispatcher.dispatch_due()
        text = (await (await merging.client.get("/metrics")).text()).splitlines()
        assert 'aftercare_segments_sent_total{kind="aftercare"} 1.0' in text
        assert not any(
            line.startswith('aftercare_segments_sent_total{kind="serum"}') for line in text
        )

    async def test_with_0s_each_goes_alone(self, start: Start) -> None:
        merging = await start("0s")
        treatment = await merging.plan()
        await merging.dispatcher.dispatch_due()
        merging.clock.advance(timedelta(seconds=15))
        await merging.dispatcher.dispatch_due()
        assert [m.body for m in merging.fake.messages] == [f"First, Ana.\n{FOOTER}", "Serum now."]
        assert [m["merged_into"] for m in await merging.read(treatment)] == [None] * 3

    async def test_an_alert_is_never_merged(self, start: Start) -> None:
        merging = await start("30s")
        treatment = await merging.plan()
        _, serum, _ = await merging.read(treatment)
        await merging.set_kind(serum["id"], "alert")
        merging.clock.advance(timedelta(seconds=15))  # both due
        await merging.dispatcher.dispatch_due()
        assert sorted(m.body for m in merging.fake.messages) == sorted(
            [f"First, Ana.\n{FOOTER}", "Serum now."]
        )
        assert [m["merged_into"] for m in await merging.read(treatment)] == [None] * 3

    async def test_a_part_opted_out_of_its_kind_is_cancelled_and_the_other_still_goes(
        self, start: Start
    ) -> None:
        merging = await start("30s")
        treatment = await merging.plan()
        await merging.text("STOP SERUM")
        await merging.dispatcher.dispatch_due()
        [sent] = merging.fake.messages
        assert sent.body == f"First, Ana.\n{FOOTER}"
        first, serum, _ = await merging.read(treatment)
        assert (first["status"], serum["status"]) == ("sent", "cancelled")
        assert serum["merged_into"] is None

    async def test_a_lead_opted_out_leaves_the_rest_to_go_at_their_own_time(
        self, start: Start
    ) -> None:
        """The serum step first (STOP SERUM): the aftercare 15 s later is not sent early."""
        merging = await start("30s")
        treatment = await merging.plan()
        first, serum, _ = await merging.read(treatment)
        await merging.set_kind(first["id"], "serum")
        await merging.set_kind(serum["id"], "aftercare")
        await merging.text("STOP SERUM")
        await merging.dispatcher.dispatch_due()
        assert merging.fake.messages == []
        first, serum, _ = await merging.read(treatment)
        assert (first["status"], serum["status"]) == ("cancelled", "scheduled")
        merging.clock.advance(timedelta(seconds=15))
        await merging.dispatcher.dispatch_due()
        assert [m.body for m in merging.fake.messages] == [f"Serum now.\n{FOOTER}"]

    async def test_messages_of_two_treatments_of_one_patient_due_together_merge(
        self, start: Start
    ) -> None:
        merging = await start("30s")
        now = merging.clock.now()
        one = await merging.plan()
        other = await merging.plan(completed_at=now - timedelta(hours=2) + timedelta(seconds=5))
        await merging.dispatcher.dispatch_due()
        [sent] = merging.fake.messages
        assert sent.body == (f"First, Ana.\n\nFirst, Ana.\n\nSerum now.\n\nSerum now.\n{FOOTER}")
        first = (await merging.read(one))[0]
        assert [m["merged_into"] for m in (await merging.read(other))[:2]] == [first["id"]] * 2

    async def test_merging_never_moves_a_text_later_than_its_earliest_part(
        self, start: Start
    ) -> None:
        """Sent when the earliest falls due, not when the last part does; nothing before."""
        merging = await start("30s")
        treatment = await merging.plan(
            completed_at=merging.clock.now() - timedelta(hours=2) + timedelta(seconds=10)
        )
        await merging.dispatcher.dispatch_due()
        assert merging.fake.messages == []  # none due yet
        merging.clock.advance(timedelta(seconds=10))
        await merging.dispatcher.dispatch_due()
        [sent] = merging.fake.messages
        first, serum, _ = await merging.read(treatment)
        assert first["sent_at"] == serum["sent_at"] == first["send_at"]
        assert serum["send_at"] > first["send_at"]
        assert "Serum now." in sent.body

    @pytest.mark.parametrize("later", [0, 15])
    @pytest.mark.parametrize("room", [1, 10])
    async def test_two_dispatchers_at_once_send_each_merged_text_once(
        self, start: Start, later: int, room: int
    ) -> None:
        """Two replicas claiming at once, in small batches and large, when only the first of
        each patient's two is due and when both are: each message once, in one text."""
        merging = await start("30s")
        treatments = [
            await merging.plan(patient={"id": f"pt_{i}", "phone": f"+1415555{i:04d}"})
            for i in range(4)
        ]
        merging.clock.advance(timedelta(seconds=later))
        mine, rival = (
            merging.replica("replica-1", room=room),
            merging.replica("replica-2", room=room),
        )
        await asyncio.gather(*[d.dispatch_due() for d in [mine, rival] * 3])
        await asyncio.gather(mine.close(timeout=5), rival.close(timeout=5))
        assert len(merging.fake.attempts) == 4  # one create a patient
        assert all(m.body.startswith("First, Ana.\n\nSerum now.") for m in merging.fake.messages)
        for treatment in treatments:
            first, serum, last = await merging.read(treatment)
            assert (first["status"], serum["status"], last["status"]) == (
                "sent",
                "sent",
                "scheduled",
            )
            assert serum["merged_into"] == first["id"]


class TestOutcomes:
    async def test_a_refused_text_fails_with_all_its_parts(self, start: Start) -> None:
        merging = await start("30s")
        merging.fake.behaviours[PHONE] = "error:21211"
        treatment = await merging.plan()
        await merging.dispatcher.dispatch_due()
        first, serum, later = await merging.read(treatment)
        assert (first["status"], serum["status"], later["status"]) == (
            "failed",
            "failed",
            "scheduled",
        )
        assert serum["error_code"] == 21211
        assert _detail(serum, "failed").startswith(f"merged into {first['id']}")

    async def test_a_text_not_found_after_a_5xx_is_retried_with_its_parts_as_one_again(
        self, start: Start
    ) -> None:
        merging = await start("30s")
        merging.fake.behaviours[PHONE] = "flaky:1"  # a 500: maybe sent, held, then reconciled
        treatment = await merging.plan()
        await merging.dispatcher.dispatch_due()
        first, serum, _ = await merging.read(treatment)
        assert (first["status"], serum["status"]) == ("sending", "sending")
        merging.clock.advance(merging.settings.scheduler.claim_lease * 3)
        await merging.client.app[TIMERS].sweep()  # the part is reconciled with its lead
        first, serum, _ = await merging.read(treatment)
        assert (first["status"], serum["status"]) == ("scheduled", "scheduled")
        assert serum["merged_into"] is None
        merging.clock.advance(merging.settings.scheduler.retry_max_delay)
        await merging.dispatcher.dispatch_due()  # both due again at the same time
        [sent] = merging.fake.messages
        assert sent.body == f"First, Ana.\n\nSerum now.\n{FOOTER}"
        first, serum, _ = await merging.read(treatment)
        assert (first["status"], serum["status"], serum["merged_into"]) == (
            "sent",
            "sent",
            first["id"],
        )

    async def test_a_text_twilio_took_is_reconciled_with_its_parts_not_sent_again(
        self, start: Start
    ) -> None:
        merging = await start("30s")
        merging.fake.behaviours[PHONE] = "lateanswer:1.5"  # accepted; the answer times out
        treatment = await merging.plan()
        await merging.dispatcher.dispatch_due()
        merging.clock.advance(merging.settings.scheduler.claim_lease * 3)
        await merging.client.app[TIMERS].sweep()
        assert len(merging.fake.attempts) == 1
        first, serum, _ = await merging.read(treatment)
        assert (first["status"], serum["status"]) == ("sent", "sent")
        assert first["provider_id"] == merging.fake.messages[0].sid
