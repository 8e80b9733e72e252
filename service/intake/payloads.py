"""Event payloads from clinic systems (contract §5), validated with pydantic.

`parse_event` turns raw bytes into a typed event or raises `Unprocessable` listing every field.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import phonenumbers
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StrictBool,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from service.errors import FieldError, Unprocessable
from service.intake.fields import Ident, Instant
from service.intake.series_payloads import (
    SERIES_TYPES,
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentRescheduled,
    SeriesEvent,
    TreatmentUpdated,
)
from service.planning.timing import zone

MOBILE_TYPES = {
    phonenumbers.PhoneNumberType.MOBILE,
    phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
}


def mobile_e164(value: str) -> str:
    """`value` if it is a valid, mobile-capable E.164 number; ValueError otherwise."""
    if not value.startswith("+"):
        raise ValueError("must be in E.164 form, e.g. +14155550123")
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise ValueError("not a phone number in E.164 form") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a valid phone number")
    if phonenumbers.number_type(number) not in MOBILE_TYPES:
        raise ValueError("not a mobile number: it cannot receive SMS")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _zone_name(value: str) -> str:
    zone(value)
    return value


Phone = Annotated[
    str,
    AfterValidator(mobile_e164),
    Field(description="E.164, a mobile-capable number", examples=["+14155550123"]),
]
ZoneName = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_zone_name)]
Name = Annotated[str, Field(min_length=1, max_length=100)]
Locale = Annotated[
    str, Field(min_length=2, max_length=16, pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")
]


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class TreatmentIn(_Body):
    id: Ident
    protocol: str = Field(min_length=1, max_length=64)
    completed_at: Instant
    session_number: int = Field(1, ge=1, le=100)
    sessions_planned: int = Field(1, ge=1, le=100)
    serum: str | None = Field(None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _sessions(self) -> TreatmentIn:
        if self.session_number > self.sessions_planned:
            raise ValueError("session_number is greater than sessions_planned")
        return self


class PatientIn(_Body):
    id: Ident
    first_name: Name
    phone: Phone
    timezone: ZoneName | None = None
    locale: Locale | None = None
    sms_consent: StrictBool


class PatientUpdate(_Body):
    id: Ident
    first_name: Name | None = None
    phone: Phone | None = None
    timezone: ZoneName | None = None
    locale: Locale | None = None
    sms_consent: StrictBool | None = None


class CompletedData(_Body):
    treatment: TreatmentIn
    patient: PatientIn


class TreatmentRef(_Body):
    id: Ident


class CancelledData(_Body):
    treatment: TreatmentRef


class UpdatedData(_Body):
    patient: PatientUpdate


# Contract §5's example, in the document; its protocol must be configured for it to plan.
EXAMPLE: dict[str, JsonValue] = {
    "type": "treatment.completed",
    "timestamp": "2026-11-25T15:00:00Z",
    "data": {
        "treatment": {
            "id": "tr_1001",
            "protocol": "microneedling",
            "completed_at": "2026-11-25T14:30:00Z",
            "session_number": 1,
            "sessions_planned": 3,
            "serum": "hyaluronic acid serum",
        },
        "patient": {
            "id": "pt_77",
            "first_name": "Ana",
            "phone": "+14155550123",
            "timezone": "America/Los_Angeles",
            "locale": "en",
            "sms_consent": True,
        },
    },
}


class TreatmentCompleted(_Body):
    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE]})

    type: Literal["treatment.completed"]
    timestamp: Instant
    data: CompletedData


class TreatmentCancelled(_Body):
    type: Literal["treatment.cancelled"]
    timestamp: Instant
    data: CancelledData


class PatientUpdated(_Body):
    type: Literal["patient.updated"]
    timestamp: Instant
    data: UpdatedData


Event = TreatmentCompleted | TreatmentCancelled | PatientUpdated | SeriesEvent
AnyEvent = Annotated[
    TreatmentCompleted
    | TreatmentCancelled
    | PatientUpdated
    | AppointmentBooked
    | AppointmentRescheduled
    | AppointmentCancelled
    | TreatmentUpdated,
    Field(discriminator="type"),
]
# The validator of every event body, and the source of its schema in the OpenAPI document.
EVENT_BODY: TypeAdapter[Event] = TypeAdapter(AnyEvent)
TYPES = ("treatment.completed", "treatment.cancelled", "patient.updated", *SERIES_TYPES)


def parse_event(raw: bytes) -> Event:
    """The typed event in `raw`; Unprocessable listing each wrong field otherwise."""
    try:
        data: Any = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Unprocessable(
            "the body is not valid JSON", errors=[FieldError("body", str(exc)[:200])]
        ) from None
    try:
        return EVENT_BODY.validate_python(data)
    except ValidationError as exc:
        errors = [FieldError(_field(e), _message(e)) for e in exc.errors()]
        raise Unprocessable("the event has missing or wrong fields", errors=errors) from None


def _field(err: Any) -> str:
    if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
        return "type"
    # The discriminated union adds the tag to the path; a client knows only its own fields.
    return ".".join(str(p) for p in err["loc"] if p not in TYPES) or "body"


def _message(err: Any) -> str:
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "union_tag_invalid":
        return "must be one of " + ", ".join(TYPES)
    return message
