"""Corrections from a clinic: an updated patient (contract §5, §8); cancellations are in
`intake.cancellations`.

Only `scheduled` messages change. One in `sending` is with the provider already and cannot be
recalled; the others are history, and keep the number and text they went out with. Every
change goes through `store.move`: conditional on the message still being scheduled (so a claim
racing a correction either wins or loses, never half), and appended to its history.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from service.errors import FieldError, Unprocessable
from service.intake import replan
from service.intake.payloads import PatientUpdate
from service.intake.planner import Planner, plan_of
from service.intake.series import limit_patient, timing_values
from service.planning.protocols import PlannedMessage
from service.reads.answers import (
    PATIENT,
    PatientAnswer,
    render,
)
from service.reads.views import patient_view, planned_view
from service.storage import appointments, erasure, message_rows, notices, reasons, store
from service.storage.message_rows import Plan, by_occurrence, new_message
from service.storage.models import Message, Patient, Status, Treatment, row_id
from service.storage.transactions import Session


@dataclass(frozen=True)
class Effect:
    """What a correction event did: its answer's JSON body, and the timers to arm."""

    body: str
    due: Sequence[tuple[str, datetime]] = ()


@dataclass(frozen=True)
class Change:
    """Which of a patient's fields an update changed."""

    phone: bool = False
    text: bool = False  # first name or locale: texts are rendered again
    zone: bool = False  # time zone: times are planned again


def apply_update(patient: Patient, update: PatientUpdate, *, now: datetime) -> Change:
    """Copy the fields the update gives onto the patient; which of them changed."""
    given = update.model_dump(exclude_none=True, exclude={"id"})
    changed = {name for name, value in given.items() if getattr(patient, name) != value}
    for name, value in given.items():
        setattr(patient, name, value)
    patient.updated_at = now
    return Change(
        phone="phone" in changed,
        text=bool({"first_name", "locale"} & changed),
        zone="timezone" in changed,
    )


def patient_updated(
    s: Session,
    planner: Planner,
    clinic_id: str,
    update: PatientUpdate,
    *,
    now: datetime,
    event_id: str,
) -> Effect:
    """The patient.updated event: the patient's scheduled messages follow the new details."""
    patient = store.find_patient(s, clinic_id, update.id)
    if patient is None:
        raise Unprocessable(
            "the patient cannot be updated",
            errors=[
                FieldError(
                    "data.patient.id",
                    "this clinic has no patient with that id "
                    "(yet): patients come with their first treatment.completed",
                )
            ],
        )
    change = apply_update(patient, update, now=now)
    store.save(s, patient)
    follow = _Follow(s, planner, clinic_id, patient, change, now=now)
    follow.run()
    if change.zone:
        follow.changed.extend(limit_patient(s, planner, patient, now, "patient.updated"))
    messages = store.messages_by_id(s, follow.changed)
    body: PatientAnswer = {
        "event_id": event_id,
        "type": "patient.updated",
        "patient": patient_view(patient),
        "messages": [planned_view(m) for m in messages],
    }
    return Effect(render(PATIENT, body), follow.due)


@dataclass
class _Follow:
    """Moves one patient's scheduled messages to their new phone, text, times or end."""

    s: Session
    planner: Planner
    clinic_id: str
    patient: Patient
    change: Change
    now: datetime
    changed: list[str] = field(default_factory=list)
    due: list[tuple[str, datetime]] = field(default_factory=list)

    def run(self) -> None:
        """Cancel everything when the patient can no longer be texted; else re-plan."""
        scheduled = store.scheduled_of_patient(self.s, row_id(self.patient.id))
        stop = self._stop_reason()
        if stop is None:
            scheduled = self._appointments(scheduled)
        for treatment_id in dict.fromkeys(m.treatment_id for m in scheduled):
            rows = [m for m in scheduled if m.treatment_id == treatment_id]
            if stop is not None:
                for row in rows:
                    self._end(row, Status.CANCELLED, stop)
            else:
                self._treatment(treatment_id, rows)

    def _appointments(self, scheduled: list[Message]) -> list[Message]:
        """Messages appointments planned follow their appointment's plan (`replan`); the
        treatments' own messages, returned, follow the treatment's."""
        links = appointments.linked_ids(self.s, [m.id for m in scheduled])
        for row in scheduled:
            if row.id in links:
                self._update(row, None)  # the new phone, if any
        if links and (self.change.text or self.change.zone):
            booked = {link.appointment_id for link in links.values()}
            changed, due = replan.follow_patient(
                self.s, self.planner, self.clinic_id, booked, now=self.now
            )
            self.changed.extend(changed)
            self.due.extend(due)
        return [m for m in scheduled if m.id not in links]

    def _stop_reason(self) -> str | None:
        if not self.patient.sms_consent:
            return reasons.CONSENT_WITHDRAWN
        keys = self.planner.settings.privacy.keys()
        phone = self.patient.phone
        if not self.change.phone:
            return None
        # An erased patient's STOP of this number (kept as its hash) names it again.
        erasure.unhash(self.s.connection(), [(self.clinic_id, phone)], keys=keys)
        if store.is_opted_out(self.s, self.clinic_id, phone, keys=keys):
            return reasons.OPTED_OUT
        return None

    def _treatment(self, treatment_id: int, rows: list[Message]) -> None:
        treatment = store.treatment(self.s, treatment_id)
        assert treatment is not None, "a message has a treatment"
        plan = self._plan(treatment)
        for row in rows:
            planned = None if plan is None else plan.get((row.step, row.seq))
            if self.change.zone and plan is not None and planned is None:
                self._end(row, Status.CANCELLED, reasons.NOT_IN_NEW_ZONE_PLAN)
            elif self.change.zone and planned is not None and planned.landed == "skipped":
                # Its step skips quiet hours, and in the new zone its time is in them.
                self._end(row, Status.CANCELLED, reasons.QUIET_HOURS)
            else:
                self._update(row, planned)
        if self.change.zone and plan is not None:
            self._add_missing(treatment, plan, steps={m.step for m in rows})

    def _plan(self, treatment: Treatment) -> Plan | None:
        """The treatment's plan for the patient as now; None when nothing is to be re-planned
        (or its protocol has left the configuration: its messages then keep their plan)."""
        if not (self.change.text or self.change.zone):
            return None
        if treatment.protocol not in self.planner.settings.protocols:
            return None
        planned = plan_of(self.planner, self.clinic_id, treatment, self.patient)
        return by_occurrence(planned)

    def _update(self, row: Message, planned: PlannedMessage | None) -> None:
        values, what = self._values(row, planned)
        if not values:
            return
        if values.get("expires_at", row.expires_at) <= self.now:
            self._end(row, Status.EXPIRED, reasons.TOO_LATE_IN_NEW_ZONE, values=values)
            return
        detail = "patient.updated: " + ", ".join(what)
        if store.move(
            self.s,
            row.id,
            to=Status.SCHEDULED,
            now=self.now,
            allowed_from=[Status.SCHEDULED],
            detail=detail,
            values=values,
        ):
            self.changed.append(row.id)
            if "due_at" in values:
                self.due.append((row.id, values["due_at"]))

    def _values(
        self, row: Message, planned: PlannedMessage | None
    ) -> tuple[dict[str, Any], list[str]]:
        values: dict[str, Any] = {}
        what = []
        if self.change.phone and row.phone != self.patient.phone:
            values["phone"] = self.patient.phone
            what.append("new phone")
        if (
            planned
            and self.change.text
            and (planned.body, planned.locale) != (row.body, row.locale)
        ):
            values.update(body=planned.body, locale=planned.locale)
            what.append("text for the new name or locale")
        if planned and self.change.zone and planned.send_at != row.send_at:
            values.update(timing_values(row, planned.send_at, planned.expires_at))
            what.append(f"re-planned in {self.patient.timezone}")
        return values, what

    def _add_missing(self, treatment: Treatment, plan: Plan, *, steps: set[str]) -> None:
        """Add what only the new zone's plan has (e.g. a day-0 time still ahead), in steps
        that still have messages to send; never a message that would already be late."""
        stored = {(m.step, m.seq) for m in store.messages_of(self.s, row_id(treatment.id))}
        ids = (row_id(treatment.id), row_id(self.patient.id))
        added = [
            new_message(
                p,
                clinic_id=self.clinic_id,
                treatment_id=ids[0],
                patient_id=ids[1],
                phone=self.patient.phone,
                reason=None,
                now=self.now,
            )
            for key, p in plan.items()
            if p.step in steps
            and key not in stored
            and p.send_at > self.now
            and p.landed != "skipped"
        ]
        message_rows.insert(self.s.connection(), [(added, ids)])
        self.changed.extend(m.id for m in added)
        self.due.extend((m.id, m.send_at) for m in added)

    def _end(
        self, row: Message, status: Status, reason: str, *, values: dict[str, Any] | None = None
    ) -> None:
        if end_scheduled(
            self.s, row.id, status, reason, source="patient.updated", now=self.now, values=values
        ):
            self.changed.append(row.id)
            if status == Status.EXPIRED:
                settings = self.planner.settings
                notices.expired_by_event(self.s.connection(), settings, row.id, now=self.now)


def end_scheduled(
    s: Session,
    message_id: str,
    status: Status,
    reason: str,
    *,
    source: str,
    now: datetime,
    values: dict[str, Any] | None = None,
) -> bool:
    """Move a still-scheduled message to `status` for `reason`; whether it was scheduled."""
    return store.move(
        s,
        message_id,
        to=status,
        now=now,
        allowed_from=[Status.SCHEDULED],
        detail=f"{reason} ({source})",
        values={**(values or {}), "reason": reason},
    )
