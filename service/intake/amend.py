"""treatment.updated (contract §13): a clinic corrects a treatment's `completed_at`,
`sessions_planned` or `serum`, and its scheduled messages follow, sent ones untouched.

The treatment's own plan is made again from the corrected values and each scheduled message
takes its occurrence's new time and text (by step and seq, as a new time zone re-plans a
treatment), or ends: a rebook step that `only_if` no longer admits is cancelled (`no more
sessions planned`). A rebook step it now admits is planned, unless the patient has a session
booked ahead or a nudge waiting. The messages appointments of the series planned (prep, a
rebook after a cancellation) keep their own anchors and take the new serum and session count
(`replan.replan`).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from service.errors import FieldError, Unprocessable
from service.intake.new_treatments import suppression
from service.intake.planner import plan_of
from service.intake.replan import Why, replan
from service.intake.series import Context, EventAnswer, followed_values
from service.intake.series_payloads import TreatmentUpdate, TreatmentUpdated
from service.planning.protocols import PlannedMessage
from service.reads.answers import TREATMENT_UPDATED, TreatmentUpdatedAnswer, render
from service.reads.views import planned_view, treatment_view
from service.storage import reasons, store
from service.storage.appointments import (
    booked_ahead,
    booked_of_treatment,
    linked_ids,
    next_seqs,
    scheduled_of_kind,
)
from service.storage.message_rows import by_occurrence
from service.storage.models import UNPLANNED, Message, Patient, Status, Treatment, row_id

FUTURE_TOLERANCE = timedelta(minutes=5)  # as the planner allows a completed treatment


def treatment_updated(c: Context, event: TreatmentUpdated) -> EventAnswer:
    """The correction applied to the treatment and followed by its scheduled messages."""
    update = event.data.treatment
    treatment = store.find_treatment(c.s, c.clinic_id, update.id)
    if treatment is None:
        raise c.unknown(
            "data.treatment.id", "treatment", " (yet): send its treatment.completed first"
        )
    _check(c, treatment, update)
    changed = _apply(c, treatment, update)
    patient = store.patient(c.s, treatment.patient_id)
    assert patient is not None, "a treatment has a patient"
    if changed and treatment.cancelled_at is None:
        if treatment.protocol in c.planner.settings.protocols:
            _follow_plan(c, treatment, patient, more="sessions_planned" in changed)
        for appointment in booked_of_treatment(c.s, row_id(treatment.id)):
            replan(c, appointment, Why("treatment corrected: " + ", ".join(changed)))
        c.limit(row_id(patient.id))
    body: TreatmentUpdatedAnswer = {
        "event_id": c.event_id,
        "type": "treatment.updated",
        "treatment": treatment_view(treatment, patient.external_id),
        "messages": [planned_view(m) for m in store.messages_by_id(c.s, c.changed)],
    }
    return EventAnswer(202, render(TREATMENT_UPDATED, body), c.due, c.source)


def _check(c: Context, treatment: Treatment, update: TreatmentUpdate) -> None:
    errors = []
    if update.completed_at is not None and update.completed_at > c.now + FUTURE_TOLERANCE:
        errors.append(FieldError("data.treatment.completed_at", "is in the future"))
    planned = update.sessions_planned
    if planned is not None and planned < treatment.session_number:
        errors.append(
            FieldError(
                "data.treatment.sessions_planned",
                f"is less than the treatment's session_number ({treatment.session_number})",
            )
        )
    if errors:
        raise Unprocessable("the treatment cannot be corrected", errors=errors)


def _apply(c: Context, treatment: Treatment, update: TreatmentUpdate) -> list[str]:
    """Copy the corrected fields onto the treatment; the names of those that changed."""
    given = update.model_dump(exclude_none=True, exclude={"id"})
    changed = [name for name, value in given.items() if getattr(treatment, name) != value]
    for name in changed:
        setattr(treatment, name, given[name])
    if changed:
        store.save(c.s, treatment)
    return changed


def _follow_plan(c: Context, treatment: Treatment, patient: Patient, *, more: bool) -> None:
    """The treatment's own scheduled messages follow its corrected plan."""
    planned = plan_of(c.planner, c.clinic_id, treatment, patient)
    plan = by_occurrence(planned)
    messages = store.messages_of(c.s, row_id(treatment.id))
    by_appointment = linked_ids(c.s, [m.id for m in messages])
    # Its plan's own: not an appointment's, nor an alert or a staff text (no plan has them).
    own = [m for m in messages if m.id not in by_appointment and m.kind not in UNPLANNED]
    for row in own:
        if row.status == Status.SCHEDULED:
            _follow(c, row, plan.get((row.step, row.seq)))
    ended = (Status.CANCELLED, Status.EXPIRED)
    if more and all(m.status in ended for m in messages if m.kind == "rebook"):
        _nudge(c, treatment, patient, planned)


def _follow(c: Context, row: Message, planned: PlannedMessage | None) -> None:
    if planned is None:
        gone = reasons.NO_MORE_SESSIONS if row.kind == "rebook" else reasons.NOT_IN_CORRECTED_PLAN
        c.end(row, Status.CANCELLED, gone)
        return
    if planned.landed == "skipped":  # its step skips quiet hours, and its new time is in them
        c.end(row, Status.CANCELLED, reasons.QUIET_HOURS)
        return
    c.change(
        row,
        followed_values(row, planned),
        "treatment corrected",
        late=reasons.TOO_LATE_AFTER_CORRECTION,
    )


def _nudge(
    c: Context, treatment: Treatment, patient: Patient, planned: list[PlannedMessage]
) -> None:
    """The rebook step a larger `sessions_planned` now admits (none of the treatment's was
    sent or is waiting), when still ahead and the patient has neither a session booked ahead
    nor a nudge waiting; numbered after the treatment's earlier ones."""
    patient_id = row_id(patient.id)
    if booked_ahead(c.s, patient_id, now=c.now) or scheduled_of_kind(
        c.s, c.clinic_id, patient_id, "rebook"
    ):
        return
    seqs = next_seqs(c.s, row_id(treatment.id))
    nudges = [
        replace(p, seq=seqs.get(p.step, 0) + p.seq)
        for p in planned
        if p.kind == "rebook" and p.send_at > c.now
    ]
    _add(c, treatment, patient, nudges)


def _add(c: Context, treatment: Treatment, patient: Patient, planned: list[PlannedMessage]) -> None:
    """Store new nudges still ahead, suppressed as a plan would be. Only a nudge is ever
    new: a correction re-plans the occurrences stored, as a new time zone does."""
    ahead = [p for p in planned if p.send_at > c.now and p.landed != "skipped"]
    if not ahead:
        return
    stopped = store.is_opted_out(
        c.s, c.clinic_id, patient.phone, keys=c.planner.settings.privacy.keys()
    )
    reason = suppression(consents=patient.sms_consent, stopped=stopped)
    rows = [c.row(p, treatment, patient, reason) for p in ahead]
    c.add(rows, treatment_id=row_id(treatment.id), patient_id=row_id(patient.id))
