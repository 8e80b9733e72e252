"""An inbound text, as one store function of the reply batch's transaction (contract §7, §10,
§12): kept, then acted on — STOP / START / HELP (of everything or of one word's kinds), `ACK`
from an on-call number, a reply to the latest check-in within its window, or other text."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from service.config import Settings
from service.conversations import acks, checkins, optouts, staff_texts
from service.conversations.keywords import Action, Keyword, keyword
from service.conversations.notices import message_data, notify, patient_ids, reply_data
from service.delivery.media_fetch import refusal
from service.delivery.replies import Handled, Reply
from service.observability.masking import mask_phone, mask_phones
from service.storage import inbound_rows, media, store
from service.storage.last_texted import Sent, last_sent
from service.storage.models import MessageHistory
from service.storage.transactions import Session

log = logging.getLogger("aftercare.inbound")


def handle(s: Session, settings: Settings, reply: Reply, *, now: datetime) -> Handled:
    """Record `reply` and act on it, in the transaction of `s`. Twilio's retry of a text kept
    already (its MessageSid) gets the first answer and changes nothing."""
    scope = clinics_texted(settings, reply)
    word = keyword(reply.body, settings.sms.stop_words)
    conn = s.connection()
    row_id = inbound_rows.keep(
        conn,
        provider_id=reply.provider_id,
        clinic_id=scope[0] if len(scope) == 1 else None,
        phone=reply.sender,
        channel=reply.channel,
        body=reply.body,
        keyword=word.text[:16] if word else None,
        received_at=now,
    )
    if row_id is None and reply.provider_id is not None:
        first = inbound_rows.kept(conn, reply.provider_id)
        log.info("Twilio's retry of a text kept already", extra={"from": mask_phone(reply.sender)})
        return Handled(first.answer, first.keyword, again=True)
    log.info(
        "reply received", extra={"from": mask_phone(reply.sender), "keyword": word and word.text}
    )
    photos = _photos(s, settings, reply, row_id, scope, now=now)
    handled = _act(s, settings, scope, reply, word, row_id=row_id, now=now, photos=photos)
    if row_id is not None:
        inbound_rows.record_answer(conn, row_id, handled.answer)
    return handled


def _photos(
    s: Session,
    settings: Settings,
    reply: Reply,
    row_id: int | None,
    scope: list[str],
    *,
    now: datetime,
) -> media.Photos:
    """The MMS's items kept as `media` rows (contract §17): pending, for the downloader, or
    refused (a type not kept, a URL off Twilio's API host) with the reason noted."""
    if row_id is None or not reply.media:
        return media.Photos(())
    api = settings.twilio.api_base_url
    items = [
        media.Item(m.url, m.content_type, refusal(m.url, m.content_type, api_base_url=api))
        for m in reply.media
    ]
    clinic_id = scope[0] if len(scope) == 1 else None
    return media.keep(s.connection(), items, inbound_id=row_id, clinic_id=clinic_id, now=now)


def _act(
    s: Session,
    settings: Settings,
    scope: list[str],
    reply: Reply,
    word: Keyword | None,
    *,
    row_id: int | None,
    now: datetime,
    photos: media.Photos,
) -> Handled:
    """What a text asks for: ACK from an on-call number, a keyword, or a reply."""
    on_call = [c for c in scope if reply.sender in settings.clinics[c].on_call_numbers]
    if word is not None and word.action is Action.ACK and on_call:
        answer = acks.acknowledge(s, settings, on_call[0], reply.sender, code=word.word, now=now)
        return Handled(answer, "ACK")
    if word is None or word.action is Action.ACK:
        return _text(s, settings, scope, reply, row_id=row_id, now=now, photos=photos)
    for clinic_id in scope:
        _keyword(s, settings, clinic_id, reply.sender, word, now=now)
    return Handled(_answer(settings, scope[0], word), word.text)


def clinics_texted(settings: Settings, reply: Reply) -> list[str]:
    """The clinic whose number (or messaging service) was texted; every clinic if none."""
    found = [
        cid
        for cid, c in settings.clinics.items()
        if (c.from_number and c.from_number == reply.to)
        or (c.messaging_service_sid and c.messaging_service_sid == reply.messaging_service_sid)
    ]
    return found or list(settings.clinics)


def _keyword(
    s: Session, settings: Settings, clinic_id: str, phone: str, word: Keyword, *, now: datetime
) -> None:
    if word.action is Action.STOP and word.word:
        optouts.stop_kinds(s, settings, clinic_id, phone, word.word, now=now)
    elif word.action is Action.STOP:
        optouts.stop(s, settings, clinic_id, phone, now=now)
    elif word.action is Action.START and word.word:
        optouts.start_kinds(s, settings, clinic_id, phone, word.word, now=now)
    elif word.action is Action.START:
        optouts.start(s, settings, clinic_id, phone, now=now)


def _text(
    s: Session,
    settings: Settings,
    scope: list[str],
    reply: Reply,
    *,
    row_id: int | None,
    now: datetime,
    photos: media.Photos,
) -> Handled:
    """Text that is no keyword: of the clinic texted, the reply to the most recent of a
    check-in still in its window and a staff text within 48 h (`staff_texts`); else kept on
    the history of the last message sent. Notified, unless a check-in's (`checkin.replied`),
    as `reply.received`. The kept row records what it answered and its level (`outside` any
    window; `free_text` for a staff text's): the console's inbox reads it."""
    staff: str | None = None
    if len(scope) == 1:
        answered = _answered(s, settings, scope[0], reply, now=now)
        if isinstance(answered, checkins.Checkin):
            done = checkins.reply(s, settings, answered, reply.body, now=now, photos=photos)
            m = answered.message
            _record(s, row_id, m.clinic_id, m.id, m.patient_id, done.level)
            return Handled(done.answer, None, done.due)
        staff = answered
    last = last_sent(s, scope, reply.sender) if staff is None else _sent(s, staff)
    if last is not None:
        detail = "patient replied: " + mask_phones(" ".join(reply.body.split()))
        history = MessageHistory(
            message_id=last.id, at=now, status=last.status, detail=detail[:255]
        )
        store.add(s, history)
    clinic_id = last.clinic_id if last is not None else scope[0] if len(scope) == 1 else None
    message_id, patient_id = (None, None) if last is None else (last.id, last.patient_id)
    level = inbound_rows.OUTSIDE if staff is None else inbound_rows.FREE_TEXT
    if staff is not None and photos.kept:
        level = inbound_rows.PHOTO
    _record(s, row_id, clinic_id, message_id, patient_id, level)
    if clinic_id is not None:
        notify(
            s,
            settings,
            clinic_id,
            "reply.received",
            lambda: _received(s, clinic_id, reply, staff, photos, now=now),
            now=now,
        )
    return Handled(None)


def _record(
    s: Session,
    row_id: int | None,
    clinic_id: str | None,
    message_id: str | None,
    patient_id: int | None,
    level: str,
) -> None:
    if row_id is not None:
        inbound_rows.record_reply(
            s.connection(),
            row_id,
            clinic_id=clinic_id,
            level=level,
            message_id=message_id,
            patient_id=patient_id,
        )
        media.assign(s.connection(), row_id, clinic_id=clinic_id, patient_id=patient_id)


def _answered(
    s: Session, settings: Settings, clinic_id: str, reply: Reply, *, now: datetime
) -> checkins.Checkin | str | None:
    """What a text to the clinic answers: its latest check-in, when in its window and sent
    after the latest staff text within 48 h; else that staff text's id; else nothing."""
    checkin = checkins.latest(s, settings, clinic_id, reply.sender)
    if checkin is not None and not checkins.within_window(checkin, now=now):
        checkin = None
    after = None if checkin is None else checkin.message.sent_at
    staff = staff_texts.answered_staff_text(s, clinic_id, reply.sender, now, after=after)
    return staff if staff is not None else checkin


def _received(
    s: Session,
    clinic_id: str,
    reply: Reply,
    staff: str | None,
    photos: media.Photos,
    *,
    now: datetime,
) -> dict[str, Any]:
    """`reply.received`: the reply, the clinic's patients with that number, it masked; and
    the staff text it answers, if it does."""
    data = {
        "reply": reply_data(reply.body, "photo" if photos.kept else "free_text", now),
        **photos.data(),
        "patient_ids": patient_ids(s, clinic_id, reply.sender),
        "phone": mask_phone(reply.sender),
    }
    message = None if staff is None else store.message(s, staff)
    if message is not None:
        data["message"] = message_data(message, *store.treatment_and_patient(s, message))
    return data


def _sent(s: Session, message_id: str) -> Sent | None:
    """A message sent, as `last_sent` answers it."""
    message = store.message(s, message_id)
    if message is None:
        return None
    return Sent(message.id, message.clinic_id, message.status, message.patient_id)


def _answer(settings: Settings, clinic_id: str, word: Keyword) -> str | None:
    name = settings.clinics[clinic_id].name
    if word.action is Action.HELP:
        return settings.clinics[clinic_id].help_text or None
    if word.word is not None:
        kind = word.word.lower()
        if word.action is Action.STOP:
            return (
                f"You will get no more {kind} texts from {name}. Reply START {word.word} to "
                "resume them. Reply STOP to stop all texts."
            )
        return f"You will get {kind} texts from {name} again. Reply STOP {word.word} to stop them."
    if word.action is Action.STOP:
        return f"You will get no more texts from {name}. Reply START to resume."
    return f"You will get aftercare texts from {name} again. Reply STOP to opt out."
