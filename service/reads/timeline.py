"""A patient as the console shows them (contract §16): who they are (never the whole number) and
everything stored about them in time order, each time in the patient's own time zone; and the
search across a staff account's clinics.

Opt-outs: the timeline holds every STOP and START text the number sent (replies with their
keyword, at their time) and the opt-outs in force now (everything, or kinds, since when). An
opt-in by START deletes the opt-out row; its time is the START text's.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from typing_extensions import TypedDict

from service.errors import NotFound
from service.reads.inbox import last_four
from service.reads.media import MediaView, media_of_replies
from service.storage import timeline as stored
from service.storage.models import Patient, row_id
from service.storage.transactions import Session

SEARCH_LIMIT = 50
EntryType = Literal["message", "reply", "escalation", "appointment", "opt_out"]


class PatientCard(TypedDict):
    """Who the patient is, with the number's last four digits only."""

    clinic_id: str
    patient_id: str  # the clinic's id
    first_name: str
    last_four: str
    timezone: str
    locale: str | None
    sms_consent: bool
    opted_out: bool  # of everything (STOP)
    opted_out_kinds: list[str]  # of these kinds (STOP <WORD>)


class StatusChange(TypedDict):
    """One entry of a message's status history, at local time."""

    at: datetime
    status: str
    detail: str | None
    error_code: int | None


class Entry(TypedDict):
    """One thing in the timeline; the fields that do not apply to its type are None."""

    at: datetime  # in the patient's time zone
    type: EntryType
    ref: str  # the message, reply, escalation or appointment id; the kind opted out of
    step: str | None
    kind: str | None  # the message's kind; a reply's keyword (STOP, START, …)
    text: str | None  # the message's body, the reply's text, the escalation's reply
    status: str | None  # a message's, an escalation's or an appointment's state
    level: str | None  # a reply's or an escalation's level
    code: str | None  # an escalation's ACK code
    acknowledged_by: str | None
    history: list[StatusChange]  # a message's status changes
    media: list[MediaView]  # a reply's photos (and other items), in the order they came


class Timeline(TypedDict):
    """The patient and their timeline, oldest first."""

    patient: PatientCard
    entries: list[Entry]


def find(s: Session, clinic_ids: Collection[str], clinic_id: str, patient_id: str) -> Patient:
    """The clinic's patient; NotFound for an unknown one, an erased one or a clinic not in
    `clinic_ids` (the staff account's)."""
    found = stored.patient(s, clinic_id, patient_id) if clinic_id in clinic_ids else None
    if found is None or found.erased_at is not None:
        raise NotFound("no patient with that id at a clinic of this account")
    return found


def card(s: Session, found: Patient) -> PatientCard:
    """The patient's card."""
    everything, kinds = stored.opt_outs(s, found.clinic_id, found.phone)
    return {
        "clinic_id": found.clinic_id,
        "patient_id": found.external_id,
        "first_name": found.first_name,
        "last_four": last_four(found.phone),
        "timezone": found.timezone,
        "locale": found.locale,
        "sms_consent": found.sms_consent,
        "opted_out": everything is not None,
        "opted_out_kinds": sorted(k.kind for k in kinds),
    }


def timeline(s: Session, clinic_ids: Collection[str], clinic_id: str, patient_id: str) -> Timeline:
    """The patient (`find`) and everything about them in time order, in their local time."""
    found = find(s, clinic_ids, clinic_id, patient_id)
    zone = _zone(found.timezone)
    entries = _messages(s, found, zone) + _replies(s, found, zone) + _others(s, found, zone)
    entries.sort(key=lambda e: e["at"])
    return {"patient": card(s, found), "entries": entries}


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):  # stored before a check; shown in UTC
        return ZoneInfo("UTC")


def _entry(at: datetime, type_: EntryType, ref: str, **fields: object) -> Entry:
    blank: dict[str, object] = dict.fromkeys(
        ("step", "kind", "text", "status", "level", "code", "acknowledged_by")
    )
    return {"at": at, "type": type_, "ref": ref, **blank, "history": [], "media": [], **fields}  # type: ignore[typeddict-item]


def _messages(s: Session, found: Patient, zone: ZoneInfo) -> list[Entry]:
    messages = stored.messages(s, row_id(found.id))
    changes: dict[str, list[StatusChange]] = {m.id: [] for m in messages}
    for h in stored.history(s, list(changes)):
        change: StatusChange = {
            "at": h.at.astimezone(zone),
            "status": h.status,
            "detail": h.detail,
            "error_code": h.error_code,
        }
        changes[h.message_id].append(change)
    entries = [
        _entry(
            (m.sent_at or m.send_at).astimezone(zone),
            "message",
            m.id,
            step=m.step,
            kind=m.kind,
            text=m.body,
            status=m.status,
            history=changes[m.id],
        )
        for m in messages
    ]
    return entries + [
        _entry(
            e.opened_at.astimezone(zone),
            "escalation",
            e.id,
            text=e.reply,
            status=e.state,
            level=e.level,
            code=e.code,
            acknowledged_by=e.acknowledged_by,
        )
        for e in stored.escalations(s, list(changes))
    ]


def _replies(s: Session, found: Patient, zone: ZoneInfo) -> list[Entry]:
    replies = stored.replies(s, found)
    media = media_of_replies(s, [r.id for r in replies if r.id is not None])
    return [
        _entry(
            r.received_at.astimezone(zone),
            "reply",
            str(r.id),
            kind=r.keyword,
            text=r.body,
            level=r.level,
            media=media.get(r.id or 0, []),
        )
        for r in replies
    ]


def _others(s: Session, found: Patient, zone: ZoneInfo) -> list[Entry]:
    entries = [
        _entry(a.starts_at.astimezone(zone), "appointment", a.external_id, status=a.state)
        for a in stored.appointments(s, row_id(found.id))
    ]
    everything, kinds = stored.opt_outs(s, found.clinic_id, found.phone)
    if everything is not None:
        entries.append(_entry(everything.at.astimezone(zone), "opt_out", "all"))
    return entries + [_entry(k.at.astimezone(zone), "opt_out", k.kind, text=k.word) for k in kinds]


class Found(TypedDict):
    """A patient a search found."""

    clinic_id: str
    patient_id: str
    first_name: str
    last_four: str


def search(s: Session, clinic_ids: Collection[str], q: str) -> list[Found]:
    """Patients of the account's clinics by first name (any case, any part), the clinic's
    patient id (exactly) or the number's last four digits; at most SEARCH_LIMIT, by name.
    An empty query finds nobody."""
    if not q.strip() or not clinic_ids:
        return []
    return [
        {
            "clinic_id": p.clinic_id,
            "patient_id": p.external_id,
            "first_name": p.first_name,
            "last_four": last_four(p.phone),
        }
        for p in stored.search(s, clinic_ids, q[:100], limit=SEARCH_LIMIT)
    ]
