"""Dispatch's recovery of claims (design invariant 3): a message left `sending` by a dead instance
is reconciled and then sent once, or recorded without a second send when it had reached Twilio; a
live claim is left alone; and a lease outlasts the requests of the process holding it (the sweeper
leaves a claim that is still being sent, only its holder extends it). The real dispatcher and
database, the real twilio client against a fake Twilio server; the clock is a fake the test moves
(tests/fixtures/dispatch.py).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sqlmodel import Session

from service.storage import claims
from service.storage.models import Status
from tests.fixtures.dispatch import World, world
from tests.processes import until_async
from tests.support import PHONE

__all__ = ["world"]  # the fixture, from tests/fixtures/dispatch.py


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
