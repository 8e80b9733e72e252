"""A cancelled treatment, by event or through the API (contract §5, §8): its scheduled messages
become `cancelled`, each conditional on still being scheduled and appended to its history."""

from __future__ import annotations

from datetime import datetime

from service.errors import FieldError, NotFound, Unprocessable
from service.intake.corrections import Effect, end_scheduled
from service.reads import lookups
from service.reads.answers import CANCEL, CancelAnswer, TreatmentAnswer, render
from service.reads.views import planned_view, treatment_view
from service.storage import reasons, store
from service.storage.models import UNPLANNED, Status, Treatment, row_id
from service.storage.transactions import Session, Transactions


def cancel(
    s: Session, clinic_id: str, external_id: str, *, now: datetime, source: str
) -> Treatment | None:
    """Cancel the clinic's treatment: its scheduled messages become `cancelled`.

    None when the clinic has no such treatment. Cancelling again changes nothing.
    """
    treatment = store.find_treatment(s, clinic_id, external_id)
    if treatment is None:
        return None
    if treatment.cancelled_at is None:
        treatment.cancelled_at = now
        store.add(s, treatment)
    for message in store.messages_of(s, row_id(treatment.id)):
        if message.status == Status.SCHEDULED and message.kind not in UNPLANNED:  # staff's own
            end_scheduled(
                s, message.id, Status.CANCELLED, reasons.TREATMENT_CANCELLED, source=source, now=now
            )
    return treatment


def treatment_cancelled(
    s: Session, clinic_id: str, external_id: str, *, now: datetime, event_id: str
) -> Effect:
    """The treatment.cancelled event: the treatment and its whole plan as it now stands."""
    treatment = cancel(s, clinic_id, external_id, now=now, source=f"event {event_id}")
    if treatment is None:
        raise Unprocessable(
            "the treatment cannot be cancelled",
            errors=[
                FieldError(
                    "data.treatment.id",
                    "this clinic has no treatment with that id "
                    "(yet): send its treatment.completed first",
                )
            ],
        )
    patient = store.patient(s, treatment.patient_id)
    assert patient is not None, "a treatment has a patient"
    messages = store.messages_of(s, row_id(treatment.id))
    body: CancelAnswer = {
        "event_id": event_id,
        "type": "treatment.cancelled",
        "treatment": treatment_view(treatment, patient.external_id),
        "messages": [planned_view(m) for m in messages],
    }
    return Effect(render(CANCEL, body))


async def cancel_from_api(
    transactions: Transactions, clinic_id: str, external_id: str, *, now: datetime
) -> TreatmentAnswer:
    """`POST …/treatments/{id}/cancel`: cancel, then answer as `GET …/treatments/{id}`."""
    return await transactions.write(lambda s: _cancel_from_api(s, clinic_id, external_id, now=now))


def _cancel_from_api(
    s: Session, clinic_id: str, external_id: str, *, now: datetime
) -> TreatmentAnswer:
    treatment = cancel(s, clinic_id, external_id, now=now, source="API")
    if treatment is None:
        raise NotFound("this clinic has no treatment with that id")
    return lookups.treatment_answer(s, treatment)
