"""Dispatch's retries (design invariant 4): what Twilio's answer makes of a send (a permanent error
fails it; a rate limit, a refused connection or a 500 retries it with backoff, never past its
expiry; 21610 opts the number out; a timeout after Twilio accepted is reconciled, not resent), and
corrections made while a message was in flight (a cancel, withdrawn consent, a new phone) applied to
its retry. The real dispatcher and database, the real twilio client against a fake Twilio server;
the clock is a fake the test moves (tests/fixtures/dispatch.py).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlmodel import Session

from service.delivery.dispatch import Dispatcher
from service.delivery.sms.twilio import TwilioSender
from service.storage import claims, store
from service.storage.models import Message, Status, Treatment
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN
from tests.fixtures.dispatch import World, world
from tests.helpers.events import cancelled_event, encode, patient_updated_event
from tests.helpers.ports import free_port
from tests.support import PHONE

__all__ = ["world"]  # the fixture, from tests/fixtures/dispatch.py


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
