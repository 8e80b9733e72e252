"""The messages an appointment plans, planned and planned again (contract §13).

An appointment plans two kinds of messages (`storage.appointments.Role`): its protocol's prep
steps, from `starts_at`; and, once cancelled while the series has sessions to come, the rebook
step again, from the cancellation. `replan` re-plans its scheduled ones occurrence by
occurrence, as a new time zone re-plans a treatment's local-clock steps: each keeps its
identity and history, takes its occurrence's new time and text, and ends (cancelled or
expired, with the reason) when its occurrence is no longer in the plan or can no longer go
out. Messages no longer scheduled (sent, cancelled, expired) are left as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from service.intake.new_treatments import suppression
from service.intake.planner import Planner
from service.intake.series import Context, followed_values
from service.planning import prep
from service.planning.protocols import PlannedMessage
from service.storage import appointments, reasons, store
from service.storage.appointments import (
    Appointment,
    AppointmentMessage,
    Role,
    linked_messages,
    next_seqs,
)
from service.storage.message_rows import Plan, by_occurrence, recipient, treatment_for_plan
from service.storage.models import Message, Status, Treatment, row_id
from service.storage.transactions import Session


@dataclass(frozen=True)
class Why:
    """What a re-plan says: in each history entry, and for a message it ends."""

    what: str  # "moved to …", "re-planned in Europe/Berlin", …
    gone: str = reasons.NOT_IN_MOVED_APPOINTMENT_PLAN  # its occurrence is not in the plan
    late: str = reasons.TOO_LATE_FOR_MOVED_APPOINTMENT  # its occurrence's time is past


def prep_plan(c: Context, appointment: Appointment, treatment: Treatment) -> list[PlannedMessage]:
    """The appointment's prep plan as of now, every occurrence (`landed` says which are not
    to be sent), with the serum and session count of the treatment its series comes from."""
    patient = store.patient(c.s, appointment.patient_id)
    assert patient is not None, "an appointment has a patient"
    return c.planner.prep_for(
        c.clinic_id,
        appointment.protocol,
        prep.Appointment(
            starts_at=appointment.starts_at,
            session_number=appointment.session_number,
            sessions_planned=max(treatment.sessions_planned, appointment.session_number),
            serum=treatment.serum,
        ),
        recipient(patient),
        now=c.now,
    )


def rebook_plan(c: Context, appointment: Appointment, treatment: Treatment) -> list[PlannedMessage]:
    """The protocol's rebook step for the series, counted from the appointment's cancellation
    (the treatment's session numbers, so `only_if` applies as it did to the treatment)."""
    assert appointment.cancelled_at is not None, "a rebook is planned from a cancellation"
    patient = store.patient(c.s, appointment.patient_id)
    assert patient is not None, "an appointment has a patient"
    counted = replace(treatment_for_plan(treatment), completed_at=appointment.cancelled_at)
    planned = c.planner.plan_for(c.clinic_id, appointment.protocol, counted, recipient(patient))
    return [p for p in planned if p.kind == "rebook"]


def sendable(planned: PlannedMessage) -> bool:
    """Whether a planned message is to go out (not past, not skipped by quiet hours)."""
    return planned.landed not in ("past", "skipped")


def store_planned(
    c: Context, appointment: Appointment, planned: list[PlannedMessage], role: Role
) -> None:
    """Store messages the appointment planned, linked to it and to its series' treatment;
    suppressed when the patient cannot be texted, as a treatment's plan is."""
    treatment = store.treatment(c.s, appointment.treatment_id)
    patient = store.patient(c.s, appointment.patient_id)
    assert treatment is not None and patient is not None, "an appointment has both"
    seqs = next_seqs(c.s, row_id(treatment.id))
    stopped = store.is_opted_out(
        c.s, c.clinic_id, patient.phone, keys=c.planner.settings.privacy.keys()
    )
    reason = suppression(consents=patient.sms_consent, stopped=stopped)
    rows, links = [], []
    for p in planned:
        numbered = replace(p, seq=seqs.get(p.step, 0) + p.seq)
        row = c.row(numbered, treatment, patient, reason)
        rows.append(row)
        links.append(
            AppointmentMessage(
                message_id=row.id,
                appointment_id=row_id(appointment.id),
                role=role,
                step=p.step,
                occurrence=p.seq,
            )
        )
    c.add(rows, treatment_id=row_id(treatment.id), patient_id=row_id(patient.id))
    store.save(c.s, *links)


def plan_of(c: Context, appointment: Appointment, role: Role) -> Plan | None:
    """The appointment's plan of one role as things stand; None when its protocol has left
    the configuration (its messages then keep their plan)."""
    if appointment.protocol not in c.planner.settings.protocols:
        return None
    treatment = store.treatment(c.s, appointment.treatment_id)
    assert treatment is not None, "an appointment has a treatment"
    if role == Role.PREP:
        planned = prep_plan(c, appointment, treatment)
    elif appointment.cancelled_at is not None:
        planned = rebook_plan(c, appointment, treatment)
    else:
        return None
    return by_occurrence(planned)


def replan(c: Context, appointment: Appointment, why: Why, *, add_missing: bool = False) -> None:
    """Re-plan the appointment's scheduled messages occurrence by occurrence; with
    `add_missing`, store the prep occurrences the new plan has and no message stands for."""
    for role in Role:
        plan = plan_of(c, appointment, role)
        if plan is None:
            continue
        linked = linked_messages(c.s, row_id(appointment.id), role)
        for row, link in linked:
            if row.status == Status.SCHEDULED:
                follow(c, row, plan.get((link.step, link.occurrence)), why)
        if add_missing and role == Role.PREP:
            stored = {(link.step, link.occurrence) for _, link in linked}
            new = [p for key, p in plan.items() if key not in stored and sendable(p)]
            store_planned(c, appointment, [p for p in new if p.send_at > c.now], role)


def follow(c: Context, row: Message, planned: PlannedMessage | None, why: Why) -> None:
    """One scheduled message follows its occurrence in a new plan, or ends."""
    if planned is None:
        c.end(row, Status.CANCELLED, why.gone)
        return
    if planned.landed == "skipped":
        c.end(row, Status.CANCELLED, reasons.QUIET_HOURS)
        return
    if planned.landed == "past":
        c.end(row, Status.EXPIRED, why.late)
        return
    c.change(row, followed_values(row, planned), why.what, late=why.late)


def follow_patient(
    s: Session, planner: Planner, clinic_id: str, appointment_ids: set[int], *, now: datetime
) -> tuple[list[str], list[tuple[str, datetime]]]:
    """patient.updated's part for messages appointments planned: each appointment's plan made
    again for the patient's new name, locale or zone; the messages changed and the timers."""
    c = Context(s, planner, clinic_id, event_id="", source="patient.updated", now=now)
    why = Why(
        "re-planned for the patient's new details",
        gone=reasons.NOT_IN_NEW_ZONE_PLAN,
        late=reasons.TOO_LATE_IN_NEW_ZONE,
    )
    for appointment_id in sorted(appointment_ids):
        appointment = appointments.appointment(s, appointment_id)
        assert appointment is not None, "a link has its appointment"
        replan(c, appointment, why)
    return c.changed, c.due
