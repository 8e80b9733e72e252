"""Events from clinic systems → stored plans. One transaction per event; replays answer again.

Idempotency rests on unique constraints (clinic + webhook id, clinic + treatment id), not on
check-then-insert: a race between two deliveries of one event ends in one plan.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from service.clock import Clock
from service.config import Settings
from service.errors import ProblemError
from service.intake import amend, appointments, cancellations, corrections
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
from service.storage.transactions import Transactions

# The series' events (SPEC §13), each a store function run whole by `Series`.
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

        A new treatment takes the batched path (`intake`); everything else, and a new
        treatment that turns out not to be new, one transaction per event."""
        digest = hashlib.sha256(raw).hexdigest()
        event = _parsed(raw)
        if event is not None and event.type in SERIES:
            now = self.clock.now()
            return await self.series.handle(
                clinic_id, webhook_id, digest, event, SERIES[event.type], now=now
            )
        if isinstance(event, TreatmentCompleted):
            fresh = self._fresh(clinic_id, webhook_id, digest, event)
            written = None if fresh is None else await self.intake.write(fresh)
            if written is not None:
                return EventAnswer(202, written.body, written.due, event.type)

        def once(s: Session) -> EventAnswer:
            return self._once(s, clinic_id, webhook_id, raw, digest, event)

        try:
            return await self.transactions.write(once)
        except IntegrityError:
            # Another delivery of the same event or treatment won the race: answer as a replay.
            return await self.transactions.write(once)

    async def close(self) -> None:
        """Finish the writes under way (before the database closes)."""
        await self.intake.close()

    def _check(self, event: TreatmentCompleted, *, now: datetime) -> None:
        treatment = event.data.treatment
        self.planner.check(
            protocol=treatment.protocol, completed_at=treatment.completed_at, now=now
        )

    def _fresh(
        self, clinic_id: str, webhook_id: str, digest: str, event: TreatmentCompleted
    ) -> Fresh | None:
        now = self.clock.now()
        try:
            self._check(event, now=now)
        except ProblemError:
            return None  # `_once` answers, after looking for a replay of this webhook id
        return self.intake.prepare(clinic_id, webhook_id, digest, event, now=now)

    def _once(
        self,
        s: Session,
        clinic_id: str,
        webhook_id: str,
        raw: bytes,
        digest: str,
        event: AnyEvent | None,
    ) -> EventAnswer:
        """One event in a transaction of its own (`s`); `event` is `raw` parsed, None when it
        did not parse (a replay of its webhook id answers first, then its parse error)."""
        previous = replayed(s, clinic_id, webhook_id, digest)
        if previous is not None:
            return previous
        event = event or parse_event(raw)
        if isinstance(event, TreatmentCompleted):
            fresh = self._new_plan(s, clinic_id, webhook_id, digest, event)
            if fresh is not None:
                return fresh
        answer = self._apply(s, clinic_id, webhook_id, event)
        record(s, clinic_id, webhook_id, digest, answer, now=self.clock.now())
        return answer

    def _new_plan(
        self,
        s: Session,
        clinic_id: str,
        webhook_id: str,
        digest: str,
        event: TreatmentCompleted,
    ) -> EventAnswer | None:
        """A treatment not stored yet, planned and stored by the batched path's own store
        function in this transaction (event row included); None when it is stored."""
        now = self.clock.now()
        self._check(event, now=now)
        if store.find_treatment(s, clinic_id, event.data.treatment.id) is not None:
            return None
        fresh = self.intake.prepare(clinic_id, webhook_id, digest, event, now=now)
        [written] = self.intake.store(s.connection(), [fresh])
        assert written is not None  # neither its webhook id nor its treatment is stored
        return EventAnswer(202, written.body, written.due, event.type)

    def _apply(
        self,
        s: Session,
        clinic_id: str,
        webhook_id: str,
        event: AnyEvent,
    ) -> EventAnswer:
        if isinstance(event, TreatmentCompleted):
            return self._completed(s, clinic_id, webhook_id, event)
        now = self.clock.now()
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

    def _completed(
        self, s: Session, clinic_id: str, webhook_id: str, event: TreatmentCompleted
    ) -> EventAnswer:
        """A treatment already stored, under another webhook id: its plan, as it stands."""
        existing = store.find_treatment(s, clinic_id, event.data.treatment.id)
        assert existing is not None  # `_new_plan` stored it otherwise
        patient = s.get(Patient, existing.patient_id)
        assert patient is not None
        messages = store.messages_of(s, row_id(existing.id))
        merged = daily.merges(messages, self.settings.sms.merge_window)
        return EventAnswer(
            200,
            _answer(webhook_id, existing, patient, messages, merged),
            type="treatment.completed",
        )


def _parsed(raw: bytes) -> AnyEvent | None:
    """The event in `raw`, or None when it does not parse (`_once` says why)."""
    try:
        return parse_event(raw)
    except ProblemError:
        return None


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
