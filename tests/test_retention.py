"""`[retention]`'s pruner (contract §19, service.storage.pruning and .retention) on a short policy,
on SQLite and PostgreSQL: what is older than its period goes (finished messages with their
history, links and callbacks; replies; escalations; events; then the appointments, treatments
and patients nothing refers to any more), what is younger stays, a scheduled message stays
whatever its age and keeps its treatment and patient, and the work is done in small batches,
each a transaction of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlmodel import Session

from service.config import RetentionSettings
from service.storage import audit
from service.storage.models import (
    Patient,
    Status,
    Treatment,
)
from service.storage.pruning import Pruner
from service.storage.retention import RULES
from service.storage.transactions import Transactions
from tests.helpers.retention import (
    LABELS,
    event_row,
    message,
    patient_world,
    story_of,
    survivors,
)
from tests.helpers.statements import statements
from tests.support import FakeClock

DAY = timedelta(days=1)
POLICY = RetentionSettings(messages="30d", replies="20d", events="10d")
EVENTS = [rule for rule in RULES if rule.name == "event"]


@pytest.fixture
async def transactions(database: str) -> AsyncIterator[Transactions]:
    opened = Transactions.open(database)
    yield opened
    await opened.close()


def pruner(transactions: Transactions, clock: FakeClock, **options: Any) -> Pruner:
    return Pruner(retention=POLICY, transactions=transactions, clock=clock, **options)


class TestPolicy:
    async def test_what_is_older_than_its_period_goes_and_the_rest_stays(
        self, transactions: Transactions, clock: FakeClock
    ) -> None:
        """A story 40 days old is gone, patient and all; one 5 days old is untouched."""
        await transactions.write(patient_world("old", clock.now() - 40 * DAY))
        await transactions.write(patient_world("new", clock.now() - 5 * DAY))
        pruned = await pruner(transactions, clock).prune()
        assert await transactions.read(survivors) == story_of("new")
        assert pruned == {
            "event": 1,
            "inbound": 1,
            "escalation": 1,
            "message": 4,
            "appointment": 1,
            "treatment": 1,
            "patient": 1,
        }

    async def test_each_period_is_its_own(
        self, transactions: Transactions, clock: FakeClock
    ) -> None:
        """15 days old: past `events` (10d), within `replies` (20d) and `messages` (30d)."""
        await transactions.write(patient_world("mid", clock.now() - 15 * DAY))
        await pruner(transactions, clock).prune()
        assert await transactions.read(survivors) == {**story_of("mid"), "event": set()}

    async def test_a_check_in_is_kept_while_its_escalation_is(
        self, transactions: Transactions, clock: FakeClock
    ) -> None:
        """Replies kept longer than messages: the check-in waits for its escalation's end,
        and its treatment and patient with it; then the next pass takes them all."""
        await transactions.write(patient_world("old", clock.now() - 40 * DAY))
        policy = RetentionSettings(messages="30d", replies="50d")
        job = Pruner(retention=policy, transactions=transactions, clock=clock)
        await job.prune()
        left = await transactions.read(survivors)
        assert (left["message"], left["escalation"]) == ({"msg_old_checkin"}, {"esc_old"})
        assert (left["treatment"], left["patient"]) == ({"tr_old"}, {"pt_old"})
        clock.advance(11 * DAY)
        await job.prune()
        assert await transactions.read(survivors) == {table: set() for table in LABELS}

    async def test_the_audit_trail_goes_after_its_own_period(
        self, transactions: Transactions, clock: FakeClock
    ) -> None:
        """`audit` (40d here) keeps a row 35 days old that every other period has passed, and
        prunes one 45 days old."""

        def audited(s: Session) -> None:
            for days in (45, 35):
                audit.record(
                    s.connection(),
                    clinic_id="glow",
                    actor="cli",
                    action=audit.PATIENT_ERASED,
                    patient_id=f"pt_{days}",
                    detail=None,
                    now=clock.now() - days * DAY,
                )

        await transactions.write(audited)
        policy = RetentionSettings(messages="30d", audit="40d")
        pruned = await Pruner(retention=policy, transactions=transactions, clock=clock).prune()
        left = await transactions.read(
            lambda s: set(s.connection().execute(sa.select(audit.AUDIT.c.patient_id)).scalars())
        )
        assert (pruned["audit"], left) == (1, {"pt_35"})


class TestNeverPruned:
    @pytest.mark.parametrize("status", [Status.SCHEDULED, Status.SENDING])
    async def test_a_message_still_to_send_stays_whatever_its_age(
        self, transactions: Transactions, clock: FakeClock, status: Status
    ) -> None:
        """A scheduled (or sending) message two years old is kept, and so are its treatment
        and patient; the finished messages beside it go."""
        at = clock.now() - 730 * DAY
        await transactions.write(patient_world("old", at))

        def waiting(s: Session) -> None:
            t = s.exec(sa.select(Treatment)).scalars().one()  # type: ignore[call-overload]
            s.add(message("old", "serum", status, at, t))

        await transactions.write(waiting)
        await pruner(transactions, clock).prune()
        left = await transactions.read(survivors)
        assert left["message"] == {"msg_old_serum"}
        assert (left["treatment"], left["patient"]) == ({"tr_old"}, {"pt_old"})

    async def test_a_patient_changed_lately_outlives_its_messages_by_its_own_period_only(
        self, transactions: Transactions, clock: FakeClock
    ) -> None:
        """A patient.updated last week keeps the row (name, number) for the period from then,
        not for ever: a later pass prunes it."""
        await transactions.write(patient_world("old", clock.now() - 40 * DAY))

        def touched(s: Session) -> None:
            s.connection().execute(sa.update(Patient).values(updated_at=clock.now() - 7 * DAY))

        await transactions.write(touched)
        job = pruner(transactions, clock)
        await job.prune()
        left = await transactions.read(survivors)
        assert left == {**{t: set() for t in LABELS}, "patient": {"pt_old"}}
        clock.advance(24 * DAY)
        assert await job.prune() == {"patient": 1}


def five_events(clock: FakeClock) -> Callable[[Session], None]:
    def work(s: Session) -> None:
        s.add_all(event_row(f"wh_{i}", clock.now() - (11 + i) * DAY) for i in range(5))

    return work


class TestBatches:
    async def test_five_rows_at_two_a_batch_are_three_transactions(
        self, transactions: Transactions, clock: FakeClock
    ) -> None:
        """2, 2, then 1: a short batch ends the loop; each batch commits on its own."""
        await transactions.write(five_events(clock))
        commits: list[None] = []

        def committed(_conn: Any) -> None:
            commits.append(None)

        event.listen(transactions.engine, "commit", committed)
        try:
            with statements(transactions) as seen:
                pruned = await pruner(transactions, clock, batch=2, rules=EVENTS).prune()
        finally:
            event.remove(transactions.engine, "commit", committed)
        assert pruned == {"event": 5}
        assert len(commits) == 3
        assert sum(s.lstrip().upper().startswith("DELETE FROM EVENT") for s in seen) == 3
        assert await transactions.read(survivors) == {t: set() for t in LABELS}
