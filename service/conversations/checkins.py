"""A reply to a check-in (contract §10): the check-in it belongs to, its triage, the history entry,
the answer in the patient's locale, the notification, and the escalation when it needs one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from service.config import Settings, StepSettings, localized
from service.conversations import escalations
from service.conversations.notices import message_data, notify, reply_data
from service.observability.masking import mask_phones
from service.planning.templates import render
from service.planning.triage import Triage, triage
from service.storage import escalation_rows, store
from service.storage.inbound_rows import PHOTO
from service.storage.last_texted import latest_checkin
from service.storage.media import Photos
from service.storage.models import Message, MessageHistory, Patient, Treatment
from service.storage.transactions import Session


@dataclass(frozen=True)
class Checkin:
    """A check-in a number was sent, with what reading and answering its reply needs."""

    message: Message
    treatment: Treatment
    patient: Patient
    step: StepSettings


@dataclass(frozen=True)
class Answered:
    """What a reply to a check-in came to: the answer to text back, the alerts' due times."""

    answer: str | None
    due: list[datetime]
    level: str  # the reply's triage level


def latest(s: Session, settings: Settings, clinic_id: str, phone: str) -> Checkin | None:
    """The latest check-in the clinic sent this number (by the index on clinic and phone: a
    patient's few dozen messages), if its step is still configured."""
    found = latest_checkin(s, clinic_id, phone)
    message = None if found is None else store.message(s, found)
    if message is None:
        return None
    treatment, patient = store.treatment_and_patient(s, message)
    protocol = settings.protocols.get(treatment.protocol)
    steps = [st for st in protocol.steps if st.key == message.step] if protocol else []
    return Checkin(message, treatment, patient, steps[0]) if steps else None


def within_window(checkin: Checkin, *, now: datetime) -> bool:
    """Whether a reply arriving `now` belongs to this check-in."""
    sent_at = checkin.message.sent_at
    return sent_at is not None and now - sent_at <= checkin.step.window


def read(checkin: Checkin, text: str) -> Triage:
    """The reply's key and level by the check-in's replies and red flags (any locale's)."""
    step = checkin.step
    levels = {key: r.level for key, r in step.replies.items()}
    return triage(text, levels, [w for words in step.red_flags.values() for w in words])


def reply(
    s: Session,
    settings: Settings,
    checkin: Checkin,
    text: str,
    *,
    now: datetime,
    photos: Photos | None = None,
) -> Answered:
    """Keep the reply on the check-in's history, notify `checkin.replied`, escalate when its
    level is one the clinic escalates; the answer, in the patient's locale. A reply with a
    photo is level `photo` unless its text is `urgent` (contract §17)."""
    found = read(checkin, text)
    photos = photos or Photos(())
    level = PHOTO if photos.kept and found.level != "urgent" else found.level
    shown = found.key if found.key is not None else " ".join(text.split())
    message = checkin.message
    detail = f'replied "{mask_phones(shown)[:200]}" ({level})'
    store.add(
        s, MessageHistory(message_id=message.id, at=now, status=message.status, detail=detail)
    )
    data = {
        "message": message_data(message, checkin.treatment, checkin.patient),
        "reply": reply_data(text, level, now),
        **photos.data(),
    }
    notify(s, settings, message.clinic_id, "checkin.replied", data, now=now)
    due: list[datetime] = []
    escalates = level in settings.clinics[message.clinic_id].escalate_levels
    # One open escalation a check-in: a worried patient texting "3" again pages nobody twice.
    if escalates and not escalation_rows.is_open(s, message.id):
        due = escalations.open_one(s, settings, checkin, text=text, level=level, now=now)
    return Answered(_answer(settings, checkin, found), due, level)


def _answer(settings: Settings, checkin: Checkin, found: Triage) -> str | None:
    step, clinic = checkin.step, settings.clinics[checkin.message.clinic_id]
    template = step.replies[found.key].answer if found.key is not None else step.fallback_answer
    if template is None:
        return None
    treatment, protocol = checkin.treatment, settings.protocols[checkin.treatment.protocol]
    values = {
        "first_name": checkin.patient.first_name,
        "clinic_name": clinic.name,
        "serum": treatment.serum or protocol.default_serum,
        "session_number": str(treatment.session_number),
        "sessions_planned": str(treatment.sessions_planned),
        "next_session_number": str(treatment.session_number + 1),
    }
    try:
        return render(localized(template, checkin.patient.locale, clinic.locale), values)
    except LookupError:  # no answer in the patient's or the clinic's locale (check-config)
        return None
