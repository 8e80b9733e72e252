"""Dispatch (DESIGN invariants 3-4): claim before send, at most once, expiry, retries.

The real dispatcher, real SQLite, the real twilio client against a fake Twilio server;
the clock is a fake the test moves.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pytest_aiohttp import AiohttpServer
from sqlmodel import Session, select

from service.delivery.dispatch import Dispatcher
from service.delivery.sms.twilio import TwilioSender
from service.intake.ingest import Ingest
from service.storage import claims, store
from service.storage.models import Message, OptOut, Status, Treatment
from service.storage.moves import Move
from service.storage.transactions import Transactions
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, serve
from tests.helpers.events import cancelled_event, completed_event, encode, patient_updated_event
from tests.helpers.ports import free_port
from tests.helpers.statements import statements
from tests.processes import until_async
from tests.support import FROM, PHONE, FakeClock, glow_in_utc, make_settings


@dataclass
class World:
    clock: FakeClock
    fake: FakeTwilio
    transactions: Transactions
    ingest: Ingest
    dispatcher: Dispatcher

    async def plan(self, **overrides: Any) -> list[Message]:
        """Post a treatment.completed through the use case; its stored messages.

        The treatment completed two hours ago, so its first step ("tonight", after 2h) is due
        now on both the fake clock and the fake Twilio's real one (reconciliation compares)."""
        now = self.clock.now()
        overrides.setdefault("treatment", {})
        overrides["treatment"].setdefault("completed_at", (now - timedelta(hours=2)).isoformat())
        overrides.setdefault("patient", {}).setdefault("timezone", "UTC")
        reply = await self.ingest.handle(
            "glow", "wh_" + secrets.token_hex(8), encode(completed_event(**overrides))
        )
        assert reply.status == 202

        def _tx(s: Session) -> Any:
            rows = (s.exec(select(Message).order_by(Message.send_at))).all()
            return rows

        rows = await self.transactions.read(_tx)
        return list(rows)

    async def message(self, message_id: str) -> Message:
        def _tx2(s: Session) -> Any:
            found = s.get(Message, message_id)
            return found

        found = await self.transactions.read(_tx2)
        assert found is not None
        return found

    async def statuses(self, message_id: str) -> list[str]:
        def _tx3(s: Session) -> Any:
            return [h.status for h in store.history_of(s, [message_id])[message_id]]

        return await self.transactions.read(_tx3)

    def at(self, when: datetime) -> None:
        self.clock.current = when

    def narrow_dispatcher(self, *, room: int) -> Dispatcher:
        """A second dispatcher with room for `room` sends at a time."""
        narrow = self.dispatcher.settings.model_copy(
            update={
                "scheduler": self.dispatcher.settings.scheduler.model_copy(
                    update={"max_concurrent_sends": room}
                )
            }
        )
        return Dispatcher(
            settings=narrow,
            transactions=self.transactions,
            sender=self.dispatcher.sender,
            clock=self.clock,
            instance="narrow",
        )


@pytest.fixture
async def world(database: str, aiohttp_server: AiohttpServer) -> AsyncIterator[World]:
    fake = FakeTwilio(callbacks=False)
    base = await serve(aiohttp_server, fake)
    settings = make_settings(
        database,
        sms={"backend": "twilio"},
        twilio={
            "account_sid": ACCOUNT_SID,
            "auth_token": AUTH_TOKEN,
            "api_base_url": base,
            "request_timeout": "1s",
        },
        clinics={"glow": glow_in_utc(webhook_secrets=[make_secret()], api_tokens=["t"])},
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
    ingest = Ingest(settings=settings, transactions=transactions, clock=clock)
    yield World(clock, fake, transactions, ingest, dispatcher)
    await sender.aclose()
    await transactions.close()


def explain_claim(conn: Any, *, now: datetime) -> list[str]:
    """PostgreSQL's plan for the claim statement, as EXPLAIN prints it."""
    compiled = claims._CLAIM.compile(dialect=conn.dialect)
    params = compiled.construct_params(
        {"now": now, "limit": 64, "instance": "x", "lease_until": now + timedelta(seconds=60)}
    )
    # The IN lists are the statement's own constants (statuses): written in as literals.
    sql = re.sub(
        r"__\[POSTCOMPILE_(\w+)\]",
        lambda m: ", ".join(f"'{v}'" for v in params[m.group(1)]),
        compiled.string,
    )
    rows = conn.exec_driver_sql(
        "EXPLAIN " + sql,
        tuple(
            params[name]
            for name in compiled.positiontup or []
            if not isinstance(params[name], list)
        ),
    ).all()
    return [row[0] for row in rows]


def node(plan: list[str], marker: str) -> list[str]:
    """The lines of the first EXPLAIN node whose line holds `marker`, with its children."""
    start = next(i for i, line in enumerate(plan) if marker in line)
    depth = len(plan[start]) - len(plan[start].lstrip())
    end = next(
        (i for i in range(start + 1, len(plan)) if len(plan[i]) - len(plan[i].lstrip()) <= depth),
        len(plan),
    )
    return plan[start:end]


def besides_history(seen: list[str]) -> list[str]:
    """The statements but the history inserts and SQLite's `BEGIN IMMEDIATE` (the ones every
    transaction that writes has; on SQLite the whole transaction is one hop to the writer's
    thread however many statements it runs, so what is counted is SQLAlchemy's work)."""
    return [sql for sql in seen if not sql.startswith(("INSERT INTO message_history", "BEGIN"))]


def make_secret() -> str:
    from tests.support import SECRET

    return SECRET


class TestSend:
    async def test_due_message_is_sent_once_with_body_sender_and_callback(
        self, world: World
    ) -> None:
        """A due message reaches Twilio once, from the clinic's number, with the callback."""
        first = (await world.plan())[0]
        world.at(first.send_at)
        await world.dispatcher.dispatch_due()
        [sent] = world.fake.messages
        assert sent.to == PHONE and sent.from_ == FROM
        assert sent.callback == "http://127.0.0.1:8080/v1/twilio/status"
        assert sent.body == "Hi Ana, no makeup for 24 hours.\nReply STOP to opt out."
        stored = await world.message(first.id)
        assert stored.status == Status.SENT and stored.provider_id == sent.sid
        assert await world.statuses(first.id) == ["scheduled", "sending", "sent"]

    async def test_message_not_yet_due_is_not_claimed(self, world: World) -> None:
        """A timer firing early (a stale timer) sends nothing."""
        first = (await world.plan())[0]
        world.at(first.send_at - timedelta(minutes=5))
        await world.dispatcher.dispatch_due()
        assert world.fake.attempts == []
        assert (await world.message(first.id)).status == Status.SCHEDULED

    async def test_concurrent_dispatches_send_once(self, world: World) -> None:
        """Two dispatchers (as two replicas) racing for a message: one claim, one send."""
        first = (await world.plan())[0]
        world.at(first.send_at)
        rival = Dispatcher(
            settings=world.dispatcher.settings,
            transactions=world.transactions,
            sender=world.dispatcher.sender,
            clock=world.clock,
            instance="test-2",
        )
        await asyncio.gather(*[d.dispatch_due() for d in [world.dispatcher, rival] * 3])
        assert len(world.fake.attempts) == 1

    async def test_more_due_than_room_are_all_sent_in_one_wake_up(self, world: World) -> None:
        """With room for two sends at a time, five messages due at once all go out."""
        completed = (world.clock.now() - timedelta(hours=2)).isoformat()
        for i in range(5):
            await world.plan(
                treatment={"completed_at": completed},
                patient={"id": f"pt_{i}", "phone": f"+1415555020{i}"},
            )
        await world.narrow_dispatcher(room=2).dispatch_due()
        assert len(world.fake.messages) == 5

    async def test_a_free_slot_is_refilled_at_once_not_when_half_are_free(
        self, world: World, frozen_heap: None
    ) -> None:
        """Room for four, Twilio answering the first send in 0.1 s and the next three in
        0.4 s: the fifth message goes out as soon as the first is answered, beside the three
        still waiting (claimed ahead), not once half the slots are free (0.4 s later)."""
        now = world.clock.now()
        latency = ["0.1", "0.4", "0.4", "0.4", "0.1", "0.1"]
        for i, seconds in enumerate(latency):  # soonest first, in this order
            completed = (now - timedelta(hours=2) - timedelta(seconds=10 - i)).isoformat()
            phone = f"+1415555040{i}"
            world.fake.behaviours[phone] = f"slow:{seconds}"
            await world.plan(
                treatment={"completed_at": completed}, patient={"id": f"pt_{i}", "phone": phone}
            )
        await world.narrow_dispatcher(room=4).dispatch_due()
        beside = {a["to"]: a["beside"] for a in world.fake.attempts}
        assert len(world.fake.messages) == 6
        assert beside["+14155550404"] == 3

    async def test_a_claim_whose_messages_were_all_cancelled_does_not_end_the_wake_up(
        self, world: World
    ) -> None:
        """Two numbers that said STOP fill the first claim of two; the messages due behind
        them still go out in the same wake-up, not at the next timer."""
        now = world.clock.now()
        for i, ago in enumerate(
            [timedelta(minutes=2), timedelta(minutes=1), timedelta(0), timedelta(0)]
        ):
            completed = (now - timedelta(hours=2) - ago).isoformat()
            await world.plan(
                treatment={"completed_at": completed},
                patient={"id": f"pt_{i}", "phone": f"+1415555030{i}"},
            )

        def _tx4(s: Session) -> Any:
            for i in range(2):
                s.add(OptOut(clinic_id="glow", phone=f"+1415555030{i}", at=now, source="test"))

        await world.transactions.write(_tx4)
        await world.narrow_dispatcher(room=2).dispatch_due()
        assert sorted(m.to for m in world.fake.messages) == ["+14155550302", "+14155550303"]

    async def test_sent_message_is_never_sent_again(self, world: World) -> None:
        """A second timer for a sent message does nothing."""
        first = (await world.plan())[0]
        world.at(first.send_at)
        await world.dispatcher.dispatch_due()
        await world.dispatcher.dispatch_due()
        assert len(world.fake.attempts) == 1

    async def test_footer_goes_on_the_first_message_only(self, world: World) -> None:
        """The opt-out footer is added to a patient's first message and no other."""
        messages = await world.plan()
        for message in messages[:3]:
            world.at(message.send_at)
            await world.dispatcher.dispatch_due()
        bodies = [m.body for m in world.fake.messages]
        assert [b.endswith("Reply STOP to opt out.") for b in bodies] == [True, False, False]

    async def test_a_retry_claimed_with_a_later_message_keeps_its_footer(
        self, world: World
    ) -> None:
        """A first message put back for a retry and the patient's next one (of a second
        treatment), claimed together: the retry carries the footer again (the same text as its
        first attempt), the next one none."""
        planned = {m.id for m in await world.plan()}
        [first] = await world.dispatcher.claim(limit=1)
        assert first.footer

        def _tx5(s: Session) -> Any:
            store.move(
                s,
                first.id,
                to=Status.SCHEDULED,
                now=world.clock.now(),
                allowed_from=[Status.SENDING],
                detail="429; retry",
            )

        await world.transactions.write(_tx5)
        world.at(world.clock.now() + timedelta(seconds=1))
        nxt = min((m for m in await world.plan() if m.id not in planned), key=lambda m: m.send_at)
        claimed = await world.dispatcher.claim(limit=10)
        assert [(c.id, c.footer) for c in claimed] == [(first.id, True), (nxt.id, False)]

    async def test_the_footer_is_not_lost_when_the_footed_message_fails(self, world: World) -> None:
        """The footed first message fails for good while the second (unfooted) is still in
        flight: the third carries the footer, or the number might never see it."""
        a, b, c = (await world.plan())[:3]
        footers = []
        for message in (a, b):
            world.at(message.send_at)
            [claimed] = await world.dispatcher.claim(limit=1)
            footers.append(claimed.footer)

        def _tx6(s: Session) -> Any:
            store.move(
                s,
                a.id,
                to=Status.FAILED,
                now=world.clock.now(),
                allowed_from=[Status.SENDING],
                detail="21211",
            )

        await world.transactions.write(_tx6)
        world.at(c.send_at)
        [third] = await world.dispatcher.claim(limit=1)
        assert [*footers, third.footer] == [True, False, True]

    async def test_messages_of_a_later_treatment_carry_no_footer(self, world: World) -> None:
        """A patient who already got a message gets no footer on a new plan."""
        first = (await world.plan())[0]
        world.at(first.send_at)
        await world.dispatcher.dispatch_due()
        world.at(first.send_at + timedelta(hours=1))
        later = [m for m in await world.plan() if m.id != first.id and m.step == "tonight"]
        world.at(later[-1].send_at)
        await world.dispatcher.dispatch_due()
        assert not world.fake.messages[-1].body.endswith("Reply STOP to opt out.")


class TestExpiry:
    async def test_message_past_its_expiry_is_expired_not_sent(self, world: World) -> None:
        """After downtime past send_at + expires_after, the message is never sent late."""
        first = (await world.plan())[0]
        world.at(first.expires_at + timedelta(seconds=1))
        await world.dispatcher.dispatch_due()
        assert world.fake.attempts == []
        stored = await world.message(first.id)
        assert stored.status == Status.EXPIRED
        assert await world.statuses(first.id) == ["scheduled", "expired"]

    async def test_late_but_unexpired_message_is_still_sent(self, world: World) -> None:
        """Within its expiry a late message still goes out."""
        first = (await world.plan())[0]
        world.at(first.expires_at - timedelta(seconds=1))
        await world.dispatcher.dispatch_due()
        assert len(world.fake.messages) == 1

    async def test_event_arriving_after_expiry_plans_the_step_expired(self, world: World) -> None:
        """A plan for a treatment long past records its stale steps as expired."""
        completed = world.clock.now() - timedelta(hours=6)
        messages = await world.plan(treatment={"completed_at": completed.isoformat()})
        tonight = next(m for m in messages if m.step == "tonight")
        assert tonight.status == Status.EXPIRED


class TestNotSent:
    async def test_opt_out_after_planning_cancels_at_send_time(self, world: World) -> None:
        """A number opted out after planning is not texted when the message falls due."""
        first = (await world.plan())[0]

        def _tx7(s: Session) -> Any:
            s.add(OptOut(clinic_id="glow", phone=PHONE, at=world.clock.now(), source="test"))

        await world.transactions.write(_tx7)
        world.at(first.send_at)
        await world.dispatcher.dispatch_due()
        assert world.fake.attempts == []
        assert (await world.message(first.id)).status == Status.CANCELLED

    async def test_suppressed_plan_sends_nothing(self, world: World) -> None:
        """Suppressed messages are never claimed."""
        messages = await world.plan(patient={"sms_consent": False})
        for message in messages:
            world.at(message.send_at)
            await world.dispatcher.dispatch_due()
        assert world.fake.attempts == []


class TestCorrectionsInFlight:
    async def claimed_then_put_back(self, world: World) -> Message:
        """The first message, claimed (in flight), and then put back as a retry would."""
        first = (await world.plan())[0]
        world.at(first.send_at)

        def _tx8(s: Session) -> Any:
            claims.claim_due(
                s.connection(),
                now=world.clock.now(),
                instance="other",
                lease=timedelta(seconds=5),
                limit=1,
            )

        await world.transactions.write(_tx8)
        return first

    async def retry(self, world: World, first: Message) -> None:
        def _tx9(s: Session) -> Any:
            store.move(
                s,
                first.id,
                to=Status.SCHEDULED,
                now=world.clock.now(),
                allowed_from=[Status.SENDING],
                detail="429; retry",
            )

        await world.transactions.write(_tx9)
        await world.dispatcher.dispatch_due()

    async def test_cancel_while_sending_stops_the_retry(self, world: World) -> None:
        """A treatment cancelled while its message was in flight: the retry is not sent."""
        first = await self.claimed_then_put_back(world)

        def _tx10(s: Session) -> Any:
            treatment = s.get(Treatment, first.treatment_id)
            return treatment

        treatment = await world.transactions.read(_tx10)
        assert treatment is not None
        reply = await world.ingest.handle(
            "glow", "wh_cancel", encode(cancelled_event(treatment.external_id))
        )
        assert reply.status == 202
        await self.retry(world, first)
        assert world.fake.attempts == []
        stored = await world.message(first.id)
        assert (stored.status, stored.reason) == (Status.CANCELLED, "treatment cancelled")

    async def test_consent_withdrawn_while_sending_stops_the_retry(self, world: World) -> None:
        """Consent withdrawn while a message was in flight: the retry is not sent."""
        first = await self.claimed_then_put_back(world)
        reply = await world.ingest.handle(
            "glow", "wh_consent", encode(patient_updated_event(sms_consent=False))
        )
        assert reply.status == 202
        await self.retry(world, first)
        assert world.fake.attempts == []
        assert (await world.message(first.id)).reason == "consent withdrawn"

    async def test_new_phone_while_sending_is_used_by_the_retry(self, world: World) -> None:
        """A phone changed while a message was in flight: the retry goes to the new one."""
        first = await self.claimed_then_put_back(world)
        reply = await world.ingest.handle(
            "glow", "wh_phone", encode(patient_updated_event(phone="+14155550177"))
        )
        assert reply.status == 202
        await self.retry(world, first)
        assert [m.to for m in world.fake.messages] == ["+14155550177"]


class TestProviderAnswers:
    async def test_permanent_error_fails_with_its_code(self, world: World) -> None:
        """21211 (invalid number) ends the message failed with the code, never retried."""
        world.fake.behaviours[PHONE] = "error:21211"
        first = (await world.plan())[0]
        world.at(first.send_at)
        await world.dispatcher.dispatch_due()
        stored = await world.message(first.id)
        assert (stored.status, stored.error_code) == (Status.FAILED, 21211)

    async def test_rate_limit_retries_later(self, world: World) -> None:
        """A 429 puts the message back with a later due time; the retry sends it."""
        world.fake.behaviours[PHONE] = "ratelimit:1"
        first = (await world.plan())[0]
        world.at(first.send_at)
        await world.dispatcher.dispatch_due()
        retry = await world.message(first.id)
        assert retry.status == Status.SCHEDULED and retry.due_at > first.send_at
        world.at(retry.due_at)
        await world.dispatcher.dispatch_due()
        assert len(world.fake.messages) == 1
        assert (await world.message(first.id)).status == Status.SENT

    async def test_rate_limit_until_expiry_ends_expired_never_late(self, world: World) -> None:
        """Retries stop at the message's expiry: it ends expired and is never sent late."""
        world.fake.behaviours[PHONE] = "ratelimit:1000"
        first = (await world.plan())[0]
        world.at(first.send_at)
        for _ in range(3):
            await world.dispatcher.dispatch_due()
            retry = await world.message(first.id)
            assert retry.status == Status.SCHEDULED
            world.at(retry.due_at)
        world.at(first.expires_at - timedelta(milliseconds=100))  # the last chance
        await world.dispatcher.dispatch_due()
        stored = await world.message(first.id)
        assert stored.status == Status.EXPIRED
        assert world.fake.messages == [] and len(world.fake.attempts) == 4
        world.at(first.expires_at + timedelta(hours=1))
        await world.dispatcher.dispatch_due()
        assert len(world.fake.attempts) == 4

    async def test_refused_connection_is_retried(self, world: World) -> None:
        """A refused connection certainly sent nothing: the message is retried later."""
        closed = TwilioSender(
            account_sid=ACCOUNT_SID,
            auth_token=AUTH_TOKEN,
            api_base_url=f"http://127.0.0.1:{free_port()}",
            timeout=1.0,
        )
        dispatcher = Dispatcher(
            settings=world.dispatcher.settings,
            transactions=world.transactions,
            sender=closed,
            clock=world.clock,
            instance="test-2",
        )
        first = (await world.plan())[0]
        world.at(first.send_at)
        await dispatcher.dispatch_due()
        await closed.aclose()
        retry = await world.message(first.id)
        assert retry.status == Status.SCHEDULED and retry.due_at > first.send_at
        world.at(retry.due_at)
        await world.dispatcher.dispatch_due()
        assert (await world.message(first.id)).status == Status.SENT

    async def test_backoff_doubles_with_jitter_up_to_the_cap(self, world: World) -> None:
        """Delays grow from retry_initial_delay, doubling, never past retry_max_delay."""
        delays = [world.dispatcher.outcomes.backoff(n) for n in range(1, 10) for _ in range(20)]
        assert min(delays) >= timedelta(seconds=0.5)
        assert max(delays) <= timedelta(seconds=4)
        assert max(world.dispatcher.outcomes.backoff(1) for _ in range(50)) <= timedelta(seconds=1)
        assert max(world.dispatcher.outcomes.backoff(3) for _ in range(50)) > timedelta(seconds=1)

    async def test_unsubscribed_recipient_opts_the_number_out(self, world: World) -> None:
        """21610 fails the message, opts the number out and cancels its pending messages."""
        world.fake.behaviours[PHONE] = "error:21610"
        messages = await world.plan()
        world.at(messages[0].send_at)
        await world.dispatcher.dispatch_due()
        assert (await world.message(messages[0].id)).error_code == 21610
        assert {(await world.message(m.id)).status for m in messages[1:]} == {Status.CANCELLED}

    async def test_server_error_is_reconciled_before_a_retry(self, world: World) -> None:
        """A 500 is ambiguous: held, reconciled after the lease, and retried when not found."""
        world.fake.behaviours[PHONE] = "flaky:1"
        first = (await world.plan())[0]
        world.at(first.send_at)
        await world.dispatcher.dispatch_due()
        assert (await world.message(first.id)).status == Status.SENDING
        world.clock.advance(timedelta(seconds=6))
        await world.dispatcher.recover(first.id)
        retry = await world.message(first.id)
        assert retry.status == Status.SCHEDULED
        world.at(retry.due_at)
        await world.dispatcher.dispatch_due()
        assert len(world.fake.messages) == 1
        assert (await world.message(first.id)).status == Status.SENT

    async def test_timeout_after_twilio_accepted_is_not_resent(self, world: World) -> None:
        """A send that timed out but reached Twilio is found by reconciliation, not resent."""
        world.fake.behaviours[PHONE] = "lateanswer:2"
        first = (await world.plan())[0]
        world.at(first.send_at)
        await world.dispatcher.dispatch_due()  # times out after 1 s
        assert (await world.message(first.id)).status == Status.SENDING
        assert len(world.fake.messages) == 1
        world.clock.advance(timedelta(seconds=6))
        await world.dispatcher.recover(first.id)
        stored = await world.message(first.id)
        assert stored.status == Status.SENT
        assert stored.provider_id == world.fake.messages[0].sid
        assert len(world.fake.attempts) == 1


class TestRecovery:
    async def test_claim_of_a_dead_instance_is_sent_once(self, world: World) -> None:
        """A message left in `sending` by a crash is reconciled, then sent once."""
        first = (await world.plan())[0]
        world.at(first.send_at)

        def _tx11(s: Session) -> Any:  # a claim whose process then died
            claims.claim_due(
                s.connection(),
                now=world.clock.now(),
                instance="dead",
                lease=timedelta(seconds=5),
                limit=1,
            )

        await world.transactions.write(_tx11)
        world.clock.advance(timedelta(seconds=6))
        await world.dispatcher.recover(first.id)
        retry = await world.message(first.id)
        world.at(retry.due_at)
        await world.dispatcher.dispatch_due()
        assert len(world.fake.messages) == 1
        assert (await world.message(first.id)).status == Status.SENT

    async def test_claim_that_reached_twilio_is_recorded_not_resent(self, world: World) -> None:
        """A crash after Twilio accepted the message records its sid without a second send."""
        first = (await world.plan())[0]
        world.at(first.send_at)

        def _tx12(s: Session) -> Any:
            [claimed] = (
                claims.claim_due(
                    s.connection(),
                    now=world.clock.now(),
                    instance="dead",
                    lease=timedelta(seconds=5),
                    limit=1,
                )
            ).claims
            return claimed

        claimed = await world.transactions.write(_tx12)
        assert claimed is not None
        await world.dispatcher.sender.send(world.dispatcher.outgoing(claimed))
        world.clock.advance(timedelta(seconds=6))
        await world.dispatcher.recover(first.id)
        stored = await world.message(first.id)
        assert stored.status == Status.SENT
        assert stored.provider_id == world.fake.messages[0].sid
        assert len(world.fake.attempts) == 1

    async def test_live_claim_is_left_alone(self, world: World) -> None:
        """A claim whose lease has not run out is not taken over."""
        first = (await world.plan())[0]
        world.at(first.send_at)

        def _tx13(s: Session) -> Any:
            claims.claim_due(
                s.connection(),
                now=world.clock.now(),
                instance="alive",
                lease=timedelta(seconds=5),
                limit=1,
            )

        await world.transactions.write(_tx13)
        await world.dispatcher.recover(first.id)
        assert (await world.message(first.id)).claimed_by == "alive"


class TestLeasesOutlastRequests:
    async def test_the_sweeper_leaves_a_claim_this_process_is_still_sending(
        self, world: World
    ) -> None:
        """Twilio slower than the lease: reconciling the claim meanwhile finds nothing and
        would retry; it is left to its send, which reaches Twilio once."""
        world.fake.behaviours[PHONE] = "slow:0.8"  # accepted after 0.8 s, inside the 1 s timeout
        first = (await world.plan())[0]
        world.at(first.send_at)
        sending = asyncio.create_task(world.dispatcher.dispatch_due())

        async def claimed() -> bool:
            return (await world.message(first.id)).status == Status.SENDING

        await until_async(claimed)
        assert not sending.done() and not world.fake.messages
        world.clock.advance(timedelta(seconds=6))  # past the 5 s lease
        await world.dispatcher.recover(first.id)
        await sending
        stored = await world.message(first.id)
        assert stored.status == Status.SENT
        world.at(stored.due_at + timedelta(seconds=10))
        await world.dispatcher.dispatch_due()
        assert len(world.fake.messages) == len(world.fake.attempts) == 1

    async def test_only_the_holder_extends_its_claim(self, world: World) -> None:
        """A holder short of lease renews it; an instance that no longer holds it cannot, and
        so does not send."""
        first = (await world.plan())[0]
        world.at(first.send_at)

        def _tx14(s: Session) -> Any:
            claims.claim_due(
                s.connection(),
                now=world.clock.now(),
                instance="late",
                lease=timedelta(seconds=5),
                limit=1,
            )
            kept = claims.extend(
                s.connection(),
                first.id,
                now=world.clock.now(),
                instance="other",
                lease=timedelta(seconds=5),
            )
            assert not kept
            world.clock.advance(timedelta(seconds=4))
            assert claims.extend(
                s.connection(),
                first.id,
                now=world.clock.now(),
                instance="late",
                lease=timedelta(seconds=5),
            )

        await world.transactions.write(_tx14)
        assert (await world.message(first.id)).lease_until == world.clock.now() + timedelta(
            seconds=5
        )


class TestBatches:
    """A burst costs a few statements per batch, not a few per message (issue 5)."""

    async def plan_many(self, world: World, n: int) -> list[Message]:
        """`n` patients' plans; the messages due now (their first, on the fake clock)."""
        for i in range(n):
            patient = {"id": f"pt_{i}", "phone": f"+1415555{100 + i:04d}"}
            planned = await world.plan(patient=patient)  # every stored message
        world.at(min(m.send_at for m in planned))
        due = [m for m in planned if m.send_at <= world.clock.now()]
        assert len(due) == n
        return due

    async def test_a_claim_of_many_is_two_statements(self, world: World) -> None:
        """Twenty due messages: one statement claims and vets them all, one marks footers
        (the history rows go with them, not as statements of their own)."""
        firsts = await self.plan_many(world, 20)
        with statements(world.transactions) as seen:
            claimed = await world.dispatcher.claim(limit=50)
        assert sorted(c.id for c in claimed) == sorted(m.id for m in firsts)
        assert all(c.footer for c in claimed)  # each is its number's first message
        assert [sql.split()[0] for sql in besides_history(seen)] == ["UPDATE", "UPDATE"], seen
        assert await world.statuses(firsts[0].id) == ["scheduled", "sending"]

    async def test_outcomes_written_together_are_one_transaction(self, world: World) -> None:
        """Twenty outcomes recorded at once go in at most two writes of a few statements."""
        firsts = await self.plan_many(world, 20)
        claimed = await world.dispatcher.claim(limit=50)
        moves = [
            Move(
                c.id,
                Status.SENT,
                "accepted as queued",
                values={"provider_id": f"SM{i:032d}", "lease_until": None},
            )
            for i, c in enumerate(claimed)
        ]
        with statements(world.transactions) as seen:
            moved = await asyncio.gather(*(world.dispatcher.recorder.record(m) for m in moves))
        assert moved == [True] * 20
        assert len(seen) <= 12, seen
        stored = await world.message(firsts[-1].id)
        assert stored.status == Status.SENT and stored.provider_id is not None
        assert await world.statuses(firsts[-1].id) == ["scheduled", "sending", "sent"]

    async def test_a_lone_outcome_is_one_statement(self, world: World) -> None:
        """An outcome written alone (a steady trickle of sends) is one conditional UPDATE,
        which also tells whether status callbacks for its sid came first."""
        [first] = await self.plan_many(world, 1)
        [claim] = await world.dispatcher.claim(limit=1)
        sent = Move(
            claim.id,
            Status.SENT,
            "accepted as queued",
            values={"provider_id": "SM" + "2" * 32, "lease_until": None},
            provider_id="SM" + "2" * 32,
        )
        with statements(world.transactions) as seen:
            assert await world.dispatcher.recorder.record(sent)
        # PostgreSQL first takes the sid's advisory lock (a callback racing the outcome)
        assert len([q for q in besides_history(seen) if "pg_advisory" not in q]) == 1, seen
        assert await world.statuses(first.id) == ["scheduled", "sending", "sent"]
        again = Move(claim.id, Status.SENT, "a second answer")
        assert not await world.dispatcher.recorder.record(again)  # not from `sending` now
        assert await world.statuses(first.id) == ["scheduled", "sending", "sent"]

    async def test_a_claim_does_not_walk_the_messages_sent_since_the_last_analyze(
        self, world: World, database: str
    ) -> None:
        """PostgreSQL: with statistics from before a run of sends, the claim's question "was
        this number reached" is still looked up by (clinic_id, phone), not by walking every
        message sent since through the status index (6,000 sends: 80 ms a claim of 64)."""
        if not database.startswith("postgresql"):
            pytest.skip("PostgreSQL's planner")
        [first] = await self.plan_many(world, 1)

        def _tx15(s: Session) -> Any:
            conn = s.connection()
            conn.exec_driver_sql(  # one number with many messages: its index looks dear
                "INSERT INTO message (id, clinic_id, treatment_id, patient_id, step, kind, seq,"
                " phone, locale, body, send_at, due_at, expires_at, status, attempts, footer,"
                " updated_at) SELECT 'msg_bulk_' || g, clinic_id, treatment_id, patient_id,"
                " 'bulk', kind, g, phone, locale, body, send_at + g * interval '1 minute',"
                " due_at + g * interval '1 minute', expires_at + g * interval '1 minute',"
                " status, attempts, footer, updated_at"
                f" FROM message, generate_series(1, 20000) g WHERE id = '{first.id}'"
            )
            conn.exec_driver_sql("ANALYZE message")  # every message scheduled
            conn.exec_driver_sql(
                "UPDATE message SET status = 'sent' WHERE id IN "
                "(SELECT id FROM message ORDER BY send_at DESC LIMIT 600)"
            )
            plan = explain_claim(conn, now=world.clock.now())
            return plan

        plan = await world.transactions.write(_tx15)
        assert "ix_message_status_due" not in " ".join(node(plan, "on message other")), plan

    async def test_two_outcomes_of_one_message_apply_in_order(self, world: World) -> None:
        """A message's second outcome waits for the next write instead of racing the first."""
        [first] = await self.plan_many(world, 1)
        [claim] = await world.dispatcher.claim(limit=1)
        hold = Move(
            claim.id,
            Status.SENDING,
            "timeout; reconcile later",
            values={"lease_until": world.clock.now()},
        )
        sent = Move(
            claim.id,
            Status.SENT,
            "found at the provider",
            values={"provider_id": "SM" + "1" * 32, "lease_until": None},
        )
        recorder = world.dispatcher.recorder
        assert await asyncio.gather(recorder.record(hold), recorder.record(sent)) == [True, True]
        assert await world.statuses(first.id) == ["scheduled", "sending", "sending", "sent"]
