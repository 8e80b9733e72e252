"""`[retention]`'s pruner (SPEC §19, service.storage.pruning and .retention) on a short policy,
on SQLite and PostgreSQL: what is older than its period goes (finished messages with their
history, links and callbacks; replies; escalations; events; then the appointments, treatments
and patients nothing refers to any more), what is younger stays, a scheduled message stays
whatever its age and keeps its treatment and patient, and the work is done in small batches,
each a transaction of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlmodel import Session

from service.config_retention import RetentionSettings
from service.storage.appointments import Appointment, AppointmentMessage
from service.storage.conversation_tables import Escalation
from service.storage.models import (
    Event,
    Inbound,
    Message,
    MessageHistory,
    Patient,
    ProviderStatus,
    Status,
    Treatment,
    row_id,
)
from service.storage.pruning import Pruner
from service.storage.retention import RULES
from service.storage.transactions import Transactions
from tests.helpers.statements import statements
from tests.support import FakeClock

DAY = timedelta(days=1)
POLICY = RetentionSettings(messages="30d", replies="20d", events="10d")  # type: ignore[arg-type]
EVENTS = [rule for rule in RULES if rule.name == "event"]
LABELS = {  # each table, by the column that names its rows in these tests
    "patient": "external_id",
    "treatment": "external_id",
    "message": "id",
    "message_history": "message_id",
    "provider_status": "provider_id",
    "appointment": "external_id",
    "appointment_message": "message_id",
    "escalation": "id",
    "inbound": "body",
    "event": "webhook_id",
}


def message(tag: str, what: str, status: Status, at: datetime, t: Treatment) -> Message:
    return Message(
        id=f"msg_{tag}_{what}",
        clinic_id="glow",
        treatment_id=row_id(t.id),
        patient_id=t.patient_id,
        step=what,
        kind="aftercare",
        seq=0,
        phone="+14155550123",
        locale="en",
        body="Hi Ana, no makeup today.",
        send_at=at,
        due_at=at,
        expires_at=at + DAY,
        status=status,
        updated_at=at,
        provider_id=f"SM{tag}{what}" if status == Status.DELIVERED else None,
    )


def event_row(webhook_id: str, at: datetime) -> Event:
    return Event(
        clinic_id="glow",
        webhook_id=webhook_id,
        body_sha256="0" * 64,
        type="treatment.completed",
        status_code=202,
        response="{}",
        received_at=at,
    )


def patient_world(tag: str, at: datetime) -> Callable[[Session], None]:
    """Patient `pt_<tag>` whose whole story happened at `at`: a treatment with a delivered
    message (history, a kept callback), a cancelled one, a check-in with its escalation, an
    appointment with its expired prep message, a reply and the event that planned it."""

    def work(s: Session) -> None:
        p = Patient(
            clinic_id="glow",
            external_id=f"pt_{tag}",
            first_name="Ana",
            phone="+14155550123",
            timezone="UTC",
            sms_consent=True,
            updated_at=at,
        )
        s.add(p)
        s.flush()
        t = Treatment(
            clinic_id="glow",
            external_id=f"tr_{tag}",
            patient_id=row_id(p.id),
            protocol="mn",
            completed_at=at,
            session_number=1,
            sessions_planned=3,
            serum="serum",
            created_at=at,
        )
        s.add(t)
        s.flush()
        _story(s, tag, at, t)

    return work


def _story(s: Session, tag: str, at: datetime, t: Treatment) -> None:
    sent = message(tag, "delivered", Status.DELIVERED, at, t)
    checkin = message(tag, "checkin", Status.DELIVERED, at, t)
    prep = message(tag, "prep", Status.EXPIRED, at, t)
    s.add_all([sent, checkin, prep, message(tag, "cancelled", Status.CANCELLED, at, t)])
    a = Appointment(
        clinic_id="glow",
        external_id=f"ap_{tag}",
        patient_id=t.patient_id,
        treatment_id=row_id(t.id),
        protocol="mn",
        session_number=2,
        starts_at=at,
        state="booked",
        created_at=at,
        updated_at=at,
    )
    s.add(a)
    s.flush()
    s.add(
        AppointmentMessage(
            message_id=prep.id, appointment_id=row_id(a.id), role="prep", step="prep", occurrence=0
        )
    )
    s.add_all(MessageHistory(message_id=m.id, at=at, status=m.status) for m in (sent, prep))
    s.add(ProviderStatus(provider_id=f"SM{tag}delivered", status="delivered", received_at=at))
    _conversation(s, tag, at, checkin)


def _conversation(s: Session, tag: str, at: datetime, checkin: Message) -> None:
    s.add(
        Escalation(
            id=f"esc_{tag}",
            clinic_id="glow",
            message_id=checkin.id,
            level="urgent",
            reply="swollen",
            opened_at=at,
        )
    )
    s.add(Inbound(clinic_id="glow", phone="+14155550123", body=f"reply {tag}", received_at=at))
    s.add(event_row(f"wh_{tag}", at))


def survivors(s: Session) -> dict[str, set[str]]:
    """Every table's rows, by the column that names them."""
    conn = s.connection()
    return {
        table: set(conn.execute(sa.text(f"SELECT {column} FROM {table}")).scalars())
        for table, column in LABELS.items()
    }


def story_of(tag: str) -> dict[str, set[str]]:
    """What `patient_world(tag, …)` stores, table by table."""
    messages = {f"msg_{tag}_{m}" for m in ("delivered", "checkin", "prep", "cancelled")}
    return {
        "patient": {f"pt_{tag}"},
        "treatment": {f"tr_{tag}"},
        "message": messages,
        "message_history": {f"msg_{tag}_delivered", f"msg_{tag}_prep"},
        "provider_status": {f"SM{tag}delivered"},
        "appointment": {f"ap_{tag}"},
        "appointment_message": {f"msg_{tag}_prep"},
        "escalation": {f"esc_{tag}"},
        "inbound": {f"reply {tag}"},
        "event": {f"wh_{tag}"},
    }


def union(*stories: dict[str, set[str]]) -> dict[str, set[str]]:
    return {table: set().union(*(story[table] for story in stories)) for table in LABELS}


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
        policy = RetentionSettings(messages="30d", replies="50d")  # type: ignore[arg-type]
        job = Pruner(retention=policy, transactions=transactions, clock=clock)
        await job.prune()
        left = await transactions.read(survivors)
        assert (left["message"], left["escalation"]) == ({"msg_old_checkin"}, {"esc_old"})
        assert (left["treatment"], left["patient"]) == ({"tr_old"}, {"pt_old"})
        clock.advance(11 * DAY)
        await job.prune()
        assert await transactions.read(survivors) == {table: set() for table in LABELS}


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
