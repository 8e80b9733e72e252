"""Staff texts on two replicas of one PostgreSQL database (contract §16, §6): each is sent exactly
once whichever replica's dispatcher claims it, and two sent at the same moment through the two
replicas to one patient are both filed (the treatment's row lock orders their seq) and sent
once each. The world is tests/fixtures/staff_texts.py's `replicas`."""

from __future__ import annotations

import asyncio

from tests.fixtures.staff_texts import Replicas, replicas, sent_to, staff_rows, staff_text

__all__ = ["replicas"]  # the fixture, from tests/fixtures/staff_texts.py


class TestReplicas:
    async def test_a_staff_text_is_sent_once_by_two_replicas(self, replicas: Replicas) -> None:
        """Filed through one replica, claimed by either: one create at the fake."""
        await replicas.a.plan(due_in=3600)
        await staff_text(replicas.a.client, "Checking in on you")
        await sent_to(replicas.fake, 1)
        await asyncio.sleep(1.0)  # both replicas' timers and refills have run meanwhile
        assert len(replicas.fake.attempts) == 1

    async def test_two_staff_texts_at_once_through_two_replicas_are_both_sent_once(
        self, replicas: Replicas
    ) -> None:
        """Filed in racing transactions on two engines: seq 0 and 1, one create each."""
        await replicas.a.plan(due_in=3600)
        await asyncio.gather(
            staff_text(replicas.a.client, "From the front desk"),
            staff_text(replicas.b.client, "From the nurse"),
        )
        rows = await staff_rows(replicas.b.client)
        assert sorted(m.seq for m in rows) == [0, 1]
        bodies = await sent_to(replicas.fake, 2)
        await asyncio.sleep(1.0)
        assert len(replicas.fake.attempts) == 2
        assert sorted(b.split("\n")[0] for b in bodies) == ["From the front desk", "From the nurse"]
        assert sum("Reply STOP" in b for b in bodies) == 1  # one first message, one footer
