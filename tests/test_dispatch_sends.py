"""Dispatch (design invariant 3-4): a due message is claimed before it is sent and sent at most
once, a free slot is refilled at once, the opt-out footer goes on a number's first message only; a
message past its expiry is never sent late, and an opted-out or suppressed one not at all. The real
dispatcher and database, the real twilio client against a fake Twilio server; the clock is a fake
the test moves (tests/fixtures/dispatch.py).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sqlmodel import Session

from service.delivery.dispatch import Dispatcher
from service.storage import store
from service.storage.models import OptOut, Status
from tests.fixtures.dispatch import World, world
from tests.support import FROM, PHONE

__all__ = ["world"]  # the fixture, from tests/fixtures/dispatch.py


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
