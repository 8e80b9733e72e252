"""A text a clinic's staff writes to a patient in the console (contract §16, design invariant 12).

It is a message of kind `staff` in the `message` table, filed under the patient's latest
treatment (step `staff`, seq 0, 1, 2, …), sent by the same claim-and-send path as every
message: exactly once, history kept, the opt-out footer on the patient's first message from
the clinic (vetting decides it at the claim, in the patient's locale). It is refused when the
number said STOP to the clinic, the patient withdrew consent or was erased; in the patient's
quiet hours it waits for their end unless sent anyway. A reply within `REPLY_WINDOW` of it is
that conversation's (`answered_staff_text`). The decisions: docs/console-staff-texts.md.

    text = await send_staff_text(
        settings=..., transactions=..., arm=timers.arm_many, clinic_id="glow",
        patient_id="pt_1", body="Hi Ana, ...", staff_email="nurse@glow.example",
        send_anyway=False, now=clock.now(),
    )
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from service.config import Settings
from service.errors import Conflict, FieldError, NotFound, Unprocessable
from service.planning.timing import push_out_of_quiet_hours, zone
from service.storage import audit, staff_texts, store
from service.storage.appointments import latest_treatment
from service.storage.message_rows import new_message_ids
from service.storage.models import STAFF, Message, MessageHistory, Patient, Status, row_id
from service.storage.transactions import Session, Transactions

STEP = "staff"  # the step every staff text is filed under
MAX_LENGTH = 1600  # Twilio's limit on a body, the opt-out footer included
REPLY_WINDOW = timedelta(hours=48)
SENT = "staff_text_sent"  # the audit action
_ALLOWED_CONTROLS = frozenset("\n\t")


class Refusal(StrEnum):
    """Why a staff text may not go to a patient."""

    OPTED_OUT = "opted_out"  # the number said STOP to the clinic (or Twilio said 21610)
    CONSENT_WITHDRAWN = "consent_withdrawn"  # the clinic's system says no SMS
    ERASED = "erased"  # the patient was erased and no number was reported since


_REFUSALS = {
    Refusal.OPTED_OUT: "this number opted out of the clinic's texts (it replied STOP)",
    Refusal.CONSENT_WITHDRAWN: "this patient does not consent to SMS",
    Refusal.ERASED: "this patient was erased: there is no number to text",
}


class StaffTextRefused(Conflict):
    """Raised when a staff text may not go to this patient; `reason` says why (a `Refusal`,
    for the page to show its `detail`). Nothing was stored."""

    def __init__(self, reason: Refusal, *, detail: str | None = None) -> None:
        super().__init__(detail or _REFUSALS[reason])
        self.reason = reason


@dataclass(frozen=True)
class StaffText:
    """A staff text as filed: its message id, the treatment it was filed under (the clinic's
    id), when it goes out (UTC), and whether quiet hours hold it until then (`held`) or it
    goes now although they are on (`in_quiet_hours` and not `held`: sent anyway)."""

    message_id: str
    treatment_id: str
    send_at: datetime
    held: bool
    in_quiet_hours: bool


Arm = Callable[[Iterable[datetime]], object]


async def send_staff_text(
    *,
    settings: Settings,
    transactions: Transactions,
    arm: Arm,
    clinic_id: str,
    patient_id: str,
    body: str,
    staff_email: str,
    send_anyway: bool,
    now: datetime,
) -> StaffText:
    """Send `body` from the clinic's staff member `staff_email` to the clinic's patient
    `patient_id` (the clinic's own id), and wake the dispatcher at its instant (`arm`: the
    timers' `arm_many`). Now, or at the end of the patient's quiet hours unless `send_anyway`.

    Raises `Unprocessable` (field `message`) for a blank body, one over the length the footer
    leaves, or one with control characters; `NotFound` for a patient the clinic does not have;
    `StaffTextRefused` (with a `Refusal`) for an opted-out number, withdrawn consent or an
    erased patient. Nothing is stored when it raises; else the message, its first history
    entry and the `staff_text_sent` audit row are stored in one transaction."""
    text = clean(body)
    filed = await transactions.write(
        lambda s: file_staff_text(
            s,
            settings,
            clinic_id=clinic_id,
            patient_id=patient_id,
            body=text,
            staff_email=staff_email,
            send_anyway=send_anyway,
            now=now,
        )
    )
    arm([filed.send_at])
    return filed


def clean(body: str) -> str:
    """The body as sent: line ends as `\\n`, surrounding blanks dropped; Unprocessable when
    blank or carrying a control character (a NUL no database column takes)."""
    text = body.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        raise _bad_body("write a message")
    if any((ord(c) < 32 and c not in _ALLOWED_CONTROLS) or ord(c) == 127 for c in text):
        raise _bad_body("the message has a control character")
    return text


def file_staff_text(
    s: Session,
    settings: Settings,
    *,
    clinic_id: str,
    patient_id: str,
    body: str,
    staff_email: str,
    send_anyway: bool,
    now: datetime,
) -> StaffText:
    """`send_staff_text`'s transaction (a store function), `body` cleaned already: the patient
    vetted, the message filed, its history begun and the act audited; what to arm, the
    caller's."""
    patient = _patient(s, settings, clinic_id, patient_id)
    _fits(settings, clinic_id, patient, body)
    quiet = settings.clinics[clinic_id].quiet()
    later = push_out_of_quiet_hours(now, zone(patient.timezone), quiet)
    held = later != now and not send_anyway
    send_at = later if held else now
    message_id, treatment_id = _file(s, settings, patient, body, send_at=send_at, now=now)
    filed = StaffText(message_id, treatment_id, send_at, held=held, in_quiet_hours=later != now)
    _history(s, filed, now=now)
    _audit(s, clinic_id, patient_id, filed, staff_email=staff_email, now=now)
    return filed


def _audit(
    s: Session,
    clinic_id: str,
    patient_id: str,
    filed: StaffText,
    *,
    staff_email: str,
    now: datetime,
) -> None:
    """The `staff_text_sent` row: who, to which patient, which message and when it goes; never
    the text."""
    detail = {
        "message_id": filed.message_id,
        "send_at": filed.send_at.isoformat(),
        "held": filed.held,
        "in_quiet_hours": filed.in_quiet_hours,
    }
    audit.record(
        s.connection(),
        clinic_id=clinic_id,
        actor=staff_email[:255],
        action=SENT,
        patient_id=patient_id,
        detail=json.dumps(detail, separators=(",", ":")),
        now=now,
    )


def _patient(s: Session, settings: Settings, clinic_id: str, patient_id: str) -> Patient:
    """The clinic's patient, if a staff text may go to them; else NotFound or a refusal."""
    patient = store.find_patient(s, clinic_id, patient_id)
    if patient is None or clinic_id not in settings.clinics:
        raise NotFound("this clinic has no patient with that id")
    if patient.erased_at is not None and not patient.phone:
        raise StaffTextRefused(Refusal.ERASED)
    if not patient.sms_consent:
        raise StaffTextRefused(Refusal.CONSENT_WITHDRAWN)
    keys = settings.privacy.keys()
    if store.is_opted_out(s, clinic_id, patient.phone, keys=keys):
        raise StaffTextRefused(Refusal.OPTED_OUT)
    word = staff_texts.kind_opted_out(s.connection(), clinic_id, patient.phone, STAFF, keys=keys)
    if word is not None:  # only when the clinic's [sms.stop_words] name the kind `staff`
        raise StaffTextRefused(
            Refusal.OPTED_OUT, detail=f"this number opted out of staff texts (STOP {word})"
        )
    return patient


def _fits(settings: Settings, clinic_id: str, patient: Patient, body: str) -> None:
    """Unprocessable when the body and the footer it may carry exceed Twilio's limit."""
    footer = settings.sms.footer(patient.locale, settings.clinics[clinic_id].locale)
    room = MAX_LENGTH - (len(footer) + 1 if footer else 0)
    if len(body) > room:
        raise _bad_body(f"at most {room} characters (the opt-out footer takes the rest)")


def _file(
    s: Session, settings: Settings, patient: Patient, body: str, *, send_at: datetime, now: datetime
) -> tuple[str, str]:
    """The message row, under the patient's latest treatment (every patient has one: they
    come with their treatments), at the next free seq of step `staff`; its id, and the
    clinic's id of that treatment."""
    treatment = latest_treatment(s, row_id(patient.id))
    assert treatment is not None, "a patient comes with a treatment"
    tid = row_id(treatment.id)
    message_id = new_message_ids(now, 1)[0]
    store.add(
        s,
        Message(
            id=message_id,
            clinic_id=patient.clinic_id,
            treatment_id=tid,
            patient_id=row_id(patient.id),
            step=STEP,
            kind=STAFF,
            seq=staff_texts.next_seq(s.connection(), tid, STEP),
            phone=patient.phone,
            locale=patient.locale or settings.clinics[patient.clinic_id].locale,
            body=body,
            send_at=send_at,
            due_at=send_at,
            expires_at=send_at + settings.scheduler.default_expires_after,
            status=Status.SCHEDULED,
            updated_at=now,
        ),
    )
    return message_id, treatment.external_id


def _history(s: Session, filed: StaffText, *, now: datetime) -> None:
    if filed.held:
        detail = "staff text; held by quiet hours until their end"
    elif filed.in_quiet_hours:
        detail = "staff text; sent anyway in quiet hours"
    else:
        detail = "staff text"
    history = MessageHistory(
        message_id=filed.message_id, at=now, status=Status.SCHEDULED, detail=detail
    )
    store.add(s, history)


def answered_staff_text(
    s: Session, clinic_id: str, phone: str, now: datetime, *, after: datetime | None = None
) -> str | None:
    """The id of the staff text a text from `phone` arriving `now` answers: the latest the
    clinic sent that number within `REPLY_WINDOW`, and at or after `after` when given (the
    sending of a check-in still in its window: the most recent of the two is answered)."""
    since = now - REPLY_WINDOW if after is None else max(now - REPLY_WINDOW, after)
    return staff_texts.latest_sent(s.connection(), clinic_id, phone, since=since)


def _bad_body(message: str) -> Unprocessable:
    return Unprocessable("the staff text cannot be sent", errors=[FieldError("message", message)])
