"""Appointments of a series (contract §13): booked, rescheduled, cancelled. Each function is a
plain function of the event's transaction (`series.Context`), run whole by `series.Series`.

- booked: the patient's scheduled rebook nudges at the clinic are cancelled (`next session
  booked`) and the protocol's prep steps planned before `starts_at`. The same appointment id
  booked again with the same details answers 200 with the appointment as it stands (like a
  treatment completed again); with other details 409 (a move is `appointment.rescheduled`).
- rescheduled: its scheduled prep follows the new time occurrence by occurrence.
- cancelled: its scheduled prep is cancelled and, while the series has sessions to come and
  nothing else is booked, the rebook step planned again from the cancellation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, cast

from service.errors import Conflict, FieldError, Unprocessable
from service.intake.replan import Why, plan_of, rebook_plan, replan, store_planned
from service.intake.series import Context, EventAnswer
from service.intake.series_payloads import (
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentIn,
    AppointmentRescheduled,
)
from service.reads.answers import (
    APPOINTMENT_EVENT,
    AppointmentEventAnswer,
    AppointmentView,
    render,
)
from service.reads.views import appointment_view, planned_view
from service.storage import reasons, store
from service.storage.appointments import (
    Appointment,
    AppointmentState,
    Linked,
    Role,
    booked_ahead,
    find_appointment,
    latest_treatment,
    linked_messages,
    scheduled_of_kind,
)
from service.storage.models import Message, Patient, Status, Treatment, row_id

AppointmentType = Literal["appointment.booked", "appointment.rescheduled", "appointment.cancelled"]
_BOOK_FIRST = " (yet): send its appointment.booked first"


def booked(c: Context, event: AppointmentBooked) -> EventAnswer:
    """appointment.booked: no more nudges to book; the session's prep planned."""
    given = event.data.appointment
    patient = store.find_patient(c.s, c.clinic_id, event.data.patient.id)
    if patient is None:
        raise c.unknown(
            "data.patient.id", "patient", " (yet): patients come with their first treatment"
        )
    existing = find_appointment(c.s, c.clinic_id, given.id)
    if existing is not None:
        return _booked_again(c, existing, given, patient)
    treatment = latest_treatment(c.s, row_id(patient.id))
    assert treatment is not None, "a patient comes with a treatment"
    appointment = _new(c, given, patient, treatment)
    for row in scheduled_of_kind(c.s, c.clinic_id, row_id(patient.id), "rebook"):
        c.end(row, Status.CANCELLED, reasons.NEXT_SESSION_BOOKED)
    plan = plan_of(c, appointment, Role.PREP) or {}
    store_planned(c, appointment, list(plan.values()), Role.PREP)
    c.limit(row_id(patient.id))
    return _reply(c, appointment, 202, store.messages_by_id(c.s, c.changed))


def _new(c: Context, given: AppointmentIn, patient: Patient, treatment: Treatment) -> Appointment:
    protocol = given.protocol or treatment.protocol
    if protocol not in c.planner.settings.protocols:
        known = ", ".join(sorted(c.planner.settings.protocols))
        raise Unprocessable(
            "the appointment cannot be planned",
            errors=[
                FieldError(
                    "data.appointment.protocol", f"unknown protocol; this service knows {known}"
                )
            ],
        )
    appointment = Appointment(
        clinic_id=c.clinic_id,
        external_id=given.id,
        patient_id=row_id(patient.id),
        treatment_id=row_id(treatment.id),
        protocol=protocol,
        session_number=given.session_number or treatment.session_number + 1,
        starts_at=given.starts_at,
        state=AppointmentState.BOOKED,
        created_at=c.now,
        updated_at=c.now,
    )
    store.save(c.s, appointment)
    return appointment


def _booked_again(
    c: Context, appointment: Appointment, given: AppointmentIn, patient: Patient
) -> EventAnswer:
    """The same appointment booked under another webhook id: as it stands, if it is the same
    booking; a conflict if it says otherwise."""
    same = (
        appointment.patient_id == patient.id
        and appointment.starts_at == given.starts_at
        and given.protocol in (None, appointment.protocol)
        and given.session_number in (None, appointment.session_number)
        and appointment.state == AppointmentState.BOOKED
    )
    if not same:
        raise Conflict(
            "this appointment id is booked already with other details, or cancelled: "
            "move it with appointment.rescheduled, or book a new id"
        )
    messages = [m for m, _ in _linked(c, appointment)]
    return _reply(c, appointment, 200, messages)


def rescheduled(c: Context, event: AppointmentRescheduled) -> EventAnswer:
    """appointment.rescheduled: its scheduled prep follows the new time."""
    given = event.data.appointment
    appointment = find_appointment(c.s, c.clinic_id, given.id)
    if appointment is None:
        raise c.unknown("data.appointment.id", "appointment", _BOOK_FIRST)
    if appointment.state == AppointmentState.CANCELLED:
        raise Conflict("this appointment is cancelled: book the new time as a new appointment")
    if appointment.starts_at != given.starts_at:
        appointment.starts_at = given.starts_at
        appointment.updated_at = c.now
        store.save(c.s, appointment)
        moved = f"appointment moved to {given.starts_at.isoformat()}"
        replan(c, appointment, Why(moved), add_missing=True)
        c.limit(appointment.patient_id)
    return _reply(c, appointment, 202, store.messages_by_id(c.s, c.changed))


def cancelled(c: Context, event: AppointmentCancelled) -> EventAnswer:
    """appointment.cancelled: its prep cancelled; the nudge to book planned again while the
    series has sessions to come. Cancelling again changes nothing."""
    appointment = find_appointment(c.s, c.clinic_id, event.data.appointment.id)
    if appointment is None:
        raise c.unknown("data.appointment.id", "appointment", _BOOK_FIRST)
    if appointment.state == AppointmentState.CANCELLED:
        return _reply(c, appointment, 202, [m for m, _ in _linked(c, appointment)])
    appointment.state, appointment.cancelled_at = AppointmentState.CANCELLED, c.now
    appointment.updated_at = c.now
    store.save(c.s, appointment)
    for row, link in _linked(c, appointment):
        if link.role == Role.PREP:
            c.end(row, Status.CANCELLED, reasons.APPOINTMENT_CANCELLED)
    _nudge_again(c, appointment)
    c.limit(appointment.patient_id)
    return _reply(c, appointment, 202, store.messages_by_id(c.s, c.changed))


def _nudge_again(c: Context, appointment: Appointment) -> None:
    """The rebook step planned again from now, if the series has sessions to come (the
    patient's latest treatment's), nothing else is booked and no nudge is waiting already."""
    treatment = latest_treatment(c.s, appointment.patient_id)
    assert treatment is not None, "a patient comes with a treatment"
    if treatment.cancelled_at is not None:
        return
    if treatment.session_number >= treatment.sessions_planned:
        return
    if appointment.protocol not in c.planner.settings.protocols:
        return
    if booked_ahead(c.s, appointment.patient_id, now=c.now) or scheduled_of_kind(
        c.s, c.clinic_id, appointment.patient_id, "rebook"
    ):
        return
    appointment.treatment_id = row_id(treatment.id)  # the series as it stands now
    store.save(c.s, appointment)
    store_planned(c, appointment, rebook_plan(c, appointment, treatment), Role.REBOOK)


def _linked(c: Context, appointment: Appointment) -> list[Linked]:
    return linked_messages(c.s, row_id(appointment.id))


def _reply(
    c: Context, appointment: Appointment, status: int, messages: Sequence[Message]
) -> EventAnswer:
    body: AppointmentEventAnswer = {
        "event_id": c.event_id,
        "type": cast(AppointmentType, c.source),  # the event's own type
        "appointment": view(c, appointment),
        "messages": [planned_view(m) for m in messages],
    }
    return EventAnswer(status, render(APPOINTMENT_EVENT, body), c.due, c.source)


def view(c: Context, appointment: Appointment) -> AppointmentView:
    """The appointment's view, with the clinic's ids of its patient and treatment."""
    patient = store.patient(c.s, appointment.patient_id)
    treatment = store.treatment(c.s, appointment.treatment_id)
    assert patient is not None and treatment is not None, "an appointment has both"
    return appointment_view(
        appointment, patient_id=patient.external_id, treatment_id=treatment.external_id
    )
