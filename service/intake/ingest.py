"""Events from clinic systems → stored plans. One transaction per event; replays answer again.

Idempotency rests on unique constraints (clinic + webhook id, clinic + treatment id), not on
check-then-insert: a race between two deliveries of one event ends in one plan.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from service.clock import Clock
from service.config import Settings
from service.errors import ProblemError
from service.intake import amend, appointments, cancellations, corrections
from service.intake.envelope import Envelope
from service.intake.fresh_rows import Fresh
from service.intake.new_treatments import Intake
from service.intake.payloads import (
    AnyEvent,
    PatientUpdated,
    TreatmentCancelled,
    TreatmentCompleted,
    parse_event,
)
from service.intake.planner import Planner
from service.intake.series import Apply, EventAnswer, Series, record, replayed
from service.reads.answers import PLAN, PlanAnswer, render
from service.reads.views import plan_view, treatment_view
from service.storage import daily, store
from service.storage.group_commit import Spawn
from service.storage.models import Message, Patient, Treatment, row_id
from service.storage.transactions import IntegrityError, Session, Transactions

# What `handle` makes of a body before any transaction: the parsed event (a new treatment's
# checked and planned), or the refusal it answers after the replay check.
Ready = AnyEvent | Fresh | ProblemError

# The series' events (contract §13), each a store function run whole by `Series`.
SERIES: dict[str, Apply] = {
    "appointment.booked": appointments.booked,
    "appointment.rescheduled": appointments.rescheduled,
    "appointment.cancelled": appointments.cancelled,
    "treatment.updated": amend.treatment_updated,
}


class Ingest:
    """Turns verified event bodies into stored plans."""

    def __init__(
        self,
        *,
        settings: Settings,
        transactions: Transactions,
        clock: Clock,
        spawn: Spawn = asyncio.create_task,
    ) -> None:
        self.settings = settings
        self.transactions = transactions  # events are background writes: they go after sends
        self.clock = clock
        self.planner = Planner(settings)
        self.series = Series(planner=self.planner, transactions=transactions)
        self.intake = Intake(
            settings=settings, transactions=transactions, planner=self.planner, spawn=spawn
        )

    async def handle(self, clinic_id: str, webhook_id: str, raw: bytes) -> EventAnswer:
        """Store the event's effect and return its answer; replays return the first answer.

        The body is parsed, checked and (a new treatment) planned once, here. A new
        treatment takes the batched path (`intake`); everything else, and a new treatment
        that turns out not to be new, one transaction per event, with what was made here."""
        envelope = Envelope.of(clinic_id, webhook_id, raw, now=self.clock.now())
        ready = self._ready(envelope, raw)
        if isinstance(ready, Fresh):
            written = await self.intake.write(ready)
            if written is not None:
                return EventAnswer(202, written.body, written.due, ready.event.type)
        elif not isinstance(ready, ProblemError) and ready.type in SERIES:
            return await self.series.handle(envelope, ready, SERIES[ready.type])

        def once(s: Session) -> EventAnswer:
            return self._once(s, envelope, ready)

        try:
            return await self.transactions.write(once)
        except IntegrityError:
            # Another delivery of the same event or treatment won the race: answer as a replay.
            return await self.transactions.write(once)

    async def close(self) -> None:
        """Finish the writes under way (before the database closes)."""
        await self.intake.close()

    def _ready(self, envelope: Envelope, raw: bytes) -> Ready:
        """`raw` parsed and, a new treatment, checked and planned; or why it cannot be (its
        answer once no replay of its webhook id answers first)."""
        try:
            event = parse_event(raw)
            if isinstance(event, TreatmentCompleted):
                treatment = event.data.treatment
                self.planner.check(
                    protocol=treatment.protocol,
                    completed_at=treatment.completed_at,
                    now=envelope.now,
                )
        except ProblemError as problem:
            return problem
        if isinstance(event, TreatmentCompleted):
            return self.intake.prepare(envelope, event)
        return event

    def _once(self, s: Session, envelope: Envelope, ready: Ready) -> EventAnswer:
        """One event in a transaction of its own (`s`): a replay of its webhook id answers
        first, then why the body cannot be taken, then its effect."""
        previous = replayed(s, envelope)
        if previous is not None:
            return previous
        if isinstance(ready, ProblemError):
            raise ready
        if isinstance(ready, Fresh):
            return self._treatment(s, ready)
        answer = self._apply(s, envelope, ready)
        record(s, envelope, answer)
        return answer

    def _treatment(self, s: Session, fresh: Fresh) -> EventAnswer:
        """A treatment not stored yet, its plan stored by the batched path's own store
        function in this transaction (event row included); one stored already, under
        another webhook id: its plan, as it stands."""
        envelope = fresh.envelope
        existing = store.find_treatment(s, envelope.clinic_id, fresh.treatment.external_id)
        if existing is None:
            [written] = self.intake.store(s.connection(), [fresh])
            assert written is not None  # neither its webhook id nor its treatment is stored
            return EventAnswer(202, written.body, written.due, fresh.event.type)
        patient = store.patient(s, existing.patient_id)
        assert patient is not None
        messages = store.messages_of(s, row_id(existing.id))
        merged = daily.merges(messages, self.settings.sms.merge_window)
        answer = EventAnswer(
            200,
            _answer(envelope.webhook_id, existing, patient, messages, merged),
            type=fresh.event.type,
        )
        record(s, envelope, answer)
        return answer

    def _apply(self, s: Session, envelope: Envelope, event: AnyEvent) -> EventAnswer:
        clinic_id, webhook_id, now = envelope.clinic_id, envelope.webhook_id, envelope.now
        if isinstance(event, TreatmentCancelled):
            effect = cancellations.treatment_cancelled(
                s, clinic_id, event.data.treatment.id, now=now, event_id=webhook_id
            )
        else:
            assert isinstance(event, PatientUpdated), "the series' events go to `series`"
            effect = corrections.patient_updated(
                s, self.planner, clinic_id, event.data.patient, now=now, event_id=webhook_id
            )
        return EventAnswer(202, effect.body, effect.due, event.type)


def _answer(
    event_id: str,
    treatment: Treatment,
    patient: Patient,
    messages: Sequence[Message],
    merged: Mapping[str, str],
) -> str:
    body: PlanAnswer = {
        "event_id": event_id,
        "type": "treatment.completed",
        "treatment": treatment_view(treatment, patient.external_id),
        "messages": [plan_view(m, merged) for m in messages],
    }
    return render(PLAN, body)
