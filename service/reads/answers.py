"""The shapes of every JSON answer (contract §5-§9), rendered by pydantic and described by it.

Each answer is a `TypedDict`: the views build plain dicts that mypy checks against it, and
its `TypeAdapter` serializes them in one pass (datetimes as UTC ISO 8601 with a `Z`) without
validating again what the service built itself, so the hot ingest path gets no per-message
objects. `service.web.openapi` takes the answers' schemas from the same adapters, so the document
and the renderer cannot drift.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, NotRequired, TypeVar

from pydantic import Field, TypeAdapter
from typing_extensions import TypedDict

from service.planning.protocols import StepKind

# The values of `models.Status` (a test keeps them equal); a Literal so a plain str from the
# database renders without a conversion per message.
StatusName = Literal[
    "scheduled",
    "sending",
    "sent",
    "delivered",
    "undelivered",
    "failed",
    "cancelled",
    "suppressed",
    "expired",
]
T = TypeVar("T")
# A step's kind, `alert`: a text to a clinic's on-call number about an escalation, or `staff`:
# a text the clinic's staff wrote in the console; both filed under the patient's treatment
# (contract §10, §16).
MessageKind = StepKind | Literal["alert", "staff"]


class PlannedMessage(TypedDict):
    """A message as the answer to an event lists it."""

    id: str
    step: str
    kind: MessageKind
    send_at: datetime
    status: StatusName
    reason: str | None


class PlanMessage(PlannedMessage):
    """A message of a treatment's plan: as an event's answer lists it, and `merged_into`, the
    id of the first message of the text it is planned to go in (null: its own text)."""

    merged_into: str | None


class HistoryEntry(TypedDict):
    """One status change of a message, with its detail (Twilio error code, reason)."""

    at: datetime
    status: StatusName
    detail: str | None
    error_code: int | None


class MessageDetail(PlannedMessage):
    """A message with its history, phone masked (the read API)."""

    seq: int
    to: str
    locale: str
    expires_at: datetime
    sent_at: datetime | None
    provider_id: str | None
    error_code: int | None
    attempts: int
    encoding: str | None  # "GSM-7" or "UCS-2" as sent, footer included; null until sent
    segments: int | None  # what the text cost, footer included; null until sent
    merged_into: str | None  # the message it went out inside, as one text (docs/merging.md)
    history: list[HistoryEntry]


class ListedMessage(MessageDetail):
    """A message in a list, with the clinic's ids of its treatment and patient."""

    treatment_id: str
    patient_id: str


class TreatmentView(TypedDict):
    """A treatment as a clinic system sees it."""

    id: str
    protocol: str
    completed_at: datetime
    session_number: int
    sessions_planned: int
    serum: str
    patient_id: str
    cancelled_at: datetime | None


class PatientView(TypedDict):
    """A patient as a clinic system sees it, phone masked."""

    id: str
    first_name: str
    phone: str
    timezone: str
    locale: str | None
    sms_consent: bool


class PlanAnswer(TypedDict):
    """The answer to treatment.completed: the plan (202), or the plan already made (200)."""

    event_id: str
    type: Literal["treatment.completed"]
    treatment: TreatmentView
    messages: list[PlanMessage]


class CancelAnswer(TypedDict):
    """The answer to treatment.cancelled: the treatment and its whole plan as it now stands."""

    event_id: str
    type: Literal["treatment.cancelled"]
    treatment: TreatmentView
    messages: list[PlannedMessage]


class PatientAnswer(TypedDict):
    """The answer to patient.updated: the patient and the messages the update changed."""

    event_id: str
    type: Literal["patient.updated"]
    patient: PatientView
    messages: list[PlannedMessage]


class AppointmentView(TypedDict):
    """An appointment as a clinic system sees it, with the treatment its series comes from."""

    id: str
    patient_id: str
    treatment_id: str
    protocol: str
    session_number: int
    starts_at: datetime
    state: Literal["booked", "cancelled"]
    cancelled_at: datetime | None


class AppointmentEventAnswer(TypedDict):
    """The answer to an appointment event: the appointment, and the messages the event planned
    or changed (prep planned, moved or cancelled; rebook nudges cancelled or planned again)."""

    event_id: str
    type: Literal["appointment.booked", "appointment.rescheduled", "appointment.cancelled"]
    appointment: AppointmentView
    messages: list[PlannedMessage]


class TreatmentUpdatedAnswer(TypedDict):
    """The answer to treatment.updated: the treatment as corrected, and the messages the
    correction changed."""

    event_id: str
    type: Literal["treatment.updated"]
    treatment: TreatmentView
    messages: list[PlannedMessage]


EventAnswer = Annotated[
    PlanAnswer | CancelAnswer | PatientAnswer | AppointmentEventAnswer | TreatmentUpdatedAnswer,
    Field(discriminator="type"),
]


class AppointmentAnswer(TypedDict):
    """An appointment and the messages it planned, each with its history."""

    appointment: AppointmentView
    messages: list[MessageDetail]


class TreatmentAnswer(TypedDict):
    """A treatment and its messages, each with its history."""

    treatment: TreatmentView
    messages: list[MessageDetail]


class MessagePage(TypedDict):
    """A page of messages, newest first; `next_cursor` is None on the last page."""

    messages: list[ListedMessage]
    next_cursor: str | None


class NotificationAttemptView(TypedDict):
    """One POST of a notification: when, and the HTTP status or the error."""

    at: datetime
    http_status: int | None
    error: str | None


class NotificationView(TypedDict):
    """A notification to the clinic's system (contract §11), with its attempts, oldest first.

    `id` is the `webhook-id` of every attempt; `payload` the JSON posted, as posted."""

    id: str
    type: str
    state: Literal["pending", "delivered", "failed"]
    created_at: datetime
    due_at: datetime | None  # the next attempt (pending only)
    give_up_at: datetime
    finished_at: datetime | None
    outcome: str | None  # delivered, gave_up, no_endpoint
    last_error: str | None
    payload: dict[str, Any]
    attempts: list[NotificationAttemptView]


class NotificationPage(TypedDict):
    """A page of notifications, newest first; `next_cursor` is None on the last page."""

    notifications: list[NotificationView]
    next_cursor: str | None


class FieldProblem(TypedDict):
    """One wrong field or parameter, by its dotted path."""

    field: str
    message: str


class Problem(TypedDict):
    """An RFC 9457 problem; `errors` lists each wrong field of a 422."""

    type: str
    title: str
    status: int
    detail: str
    errors: NotRequired[list[FieldProblem]]


class Readiness(TypedDict):
    """Whether the service can work: each check is "ok" or says why it fails."""

    status: Literal["ok", "unavailable"]
    checks: dict[str, str]


class Health(TypedDict):
    """The process runs."""

    status: Literal["ok"]


PLAN: TypeAdapter[PlanAnswer] = TypeAdapter(PlanAnswer)
CANCEL: TypeAdapter[CancelAnswer] = TypeAdapter(CancelAnswer)
PATIENT: TypeAdapter[PatientAnswer] = TypeAdapter(PatientAnswer)
APPOINTMENT_EVENT: TypeAdapter[AppointmentEventAnswer] = TypeAdapter(AppointmentEventAnswer)
TREATMENT_UPDATED: TypeAdapter[TreatmentUpdatedAnswer] = TypeAdapter(TreatmentUpdatedAnswer)
EVENT: TypeAdapter[
    PlanAnswer | CancelAnswer | PatientAnswer | AppointmentEventAnswer | TreatmentUpdatedAnswer
] = TypeAdapter(EventAnswer)
APPOINTMENT: TypeAdapter[AppointmentAnswer] = TypeAdapter(AppointmentAnswer)
TREATMENT: TypeAdapter[TreatmentAnswer] = TypeAdapter(TreatmentAnswer)
PAGE: TypeAdapter[MessagePage] = TypeAdapter(MessagePage)
NOTIFICATION: TypeAdapter[NotificationView] = TypeAdapter(NotificationView)
NOTIFICATIONS: TypeAdapter[NotificationPage] = TypeAdapter(NotificationPage)
PROBLEM: TypeAdapter[Problem] = TypeAdapter(Problem)
READINESS: TypeAdapter[Readiness] = TypeAdapter(Readiness)
HEALTH: TypeAdapter[Health] = TypeAdapter(Health)


def render(adapter: TypeAdapter[T], value: T) -> str:
    """`value` as JSON text, by the adapter that describes it in the OpenAPI document."""
    return adapter.dump_json(value).decode()


def json_schema_inputs() -> list[tuple[str, Literal["serialization"], TypeAdapter[Any]]]:
    """Every answer's adapter by its name in the document, in serialization mode."""
    named: dict[str, TypeAdapter[Any]] = {
        "EventAnswer": EVENT,
        "TreatmentAnswer": TREATMENT,
        "AppointmentAnswer": APPOINTMENT,
        "MessagePage": PAGE,
        "NotificationView": NOTIFICATION,
        "NotificationPage": NOTIFICATIONS,
        "Problem": PROBLEM,
        "Readiness": READINESS,
        "Health": HEALTH,
    }
    return [(name, "serialization", adapter) for name, adapter in named.items()]
