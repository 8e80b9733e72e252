"""`GET /v1/clinics/{clinic_id}/appointments/{appointment_id}` (contract §13, §8): an appointment
and the messages it planned, each with its history; a store function run by `Transactions`."""

from __future__ import annotations

from service.errors import NotFound
from service.reads.answers import AppointmentAnswer
from service.reads.views import appointment_view, message_view
from service.storage import store
from service.storage.appointments import find_appointment, linked_messages
from service.storage.models import row_id
from service.storage.transactions import Session


def appointment(s: Session, clinic_id: str, external_id: str) -> AppointmentAnswer:
    """The clinic's appointment and its messages (prep, and a rebook nudge planned again by
    its cancellation), in send order; NotFound otherwise."""
    found = find_appointment(s, clinic_id, external_id)
    if found is None:
        raise NotFound("this clinic has no appointment with that id")
    treatment, patient = store.treatment_and_patient(s, found)
    messages = [m for m, _ in linked_messages(s, row_id(found.id))]
    history = store.history_of(s, [m.id for m in messages])
    return {
        "appointment": appointment_view(
            found, patient_id=patient.external_id, treatment_id=treatment.external_id
        ),
        "messages": [message_view(m, history[m.id]) for m in messages],
    }
