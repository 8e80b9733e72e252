"""What Twilio tells us: patients' replies (STOP / START / HELP) and which delivery statuses
count. Both are written in batches by `return_path`; status callbacks by `callbacks`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, delete, select

from service.config import Settings
from service.observability.masking import mask_phone, mask_phones
from service.storage import store
from service.storage.models import Inbound, Message, MessageHistory, OptOut, Status
from service.storage.transactions import Transactions

log = logging.getLogger("aftercare.inbound")
STOP = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT", "OPT OUT"}
START = {"START", "UNSTOP", "YES"}
HELP = {"HELP", "INFO"}
PROVIDER_STATUS = {
    "sent": Status.SENT,
    "delivered": Status.DELIVERED,
    "undelivered": Status.UNDELIVERED,
    "failed": Status.FAILED,
}


def keyword(body: str) -> str | None:
    """The STOP/START/HELP keyword a reply is, ignoring case, spaces and punctuation."""
    word = " ".join(re.sub(r"[^\w\s]", " ", body).split()).upper()
    for family in (STOP, START, HELP):
        if word in family:
            return word
    return None


@dataclass(frozen=True)
class Reply:
    """A patient's text to a clinic number, as Twilio posts it."""

    sender: str
    to: str
    body: str
    provider_id: str | None = None
    messaging_service_sid: str | None = None


async def handle_reply(
    transactions: Transactions, settings: Settings, reply: Reply, *, now: datetime
) -> str | None:
    """Record a reply and act on its keyword, in a transaction of its own; the text to answer
    with, if any."""
    return await transactions.write(lambda s: record_reply(s, settings, reply, now=now))


def record_reply(s: Session, settings: Settings, reply: Reply, *, now: datetime) -> str | None:
    """`handle_reply` inside the transaction `s` (a batch of replies from other numbers)."""
    scope = _clinics_texted(settings, reply)
    word = keyword(reply.body)
    s.add(
        Inbound(
            clinic_id=scope[0] if len(scope) == 1 else None,
            provider_id=reply.provider_id,
            phone=reply.sender,
            body=reply.body[:1600],
            keyword=word,
            received_at=now,
        )
    )
    if word in STOP:
        for clinic_id in scope:
            store.opt_out(s, clinic_id, reply.sender, now=now, source="sms-stop")
    elif word in START:
        s.exec(
            delete(OptOut).where(
                col(OptOut.clinic_id).in_(scope), col(OptOut.phone) == reply.sender
            )
        )
    elif word is None:
        _note_reply(s, scope, reply, now=now)
    log.info("reply received", extra={"from": mask_phone(reply.sender), "keyword": word})
    return _answer(settings, scope[0], word)


def _clinics_texted(settings: Settings, reply: Reply) -> list[str]:
    """The clinic whose number (or messaging service) was texted; every clinic if none."""
    found = [
        cid
        for cid, c in settings.clinics.items()
        if (c.from_number and c.from_number == reply.to)
        or (c.messaging_service_sid and c.messaging_service_sid == reply.messaging_service_sid)
    ]
    return found or list(settings.clinics)


def _note_reply(s: Session, scope: list[str], reply: Reply, *, now: datetime) -> None:
    """Append a free-text reply to the history of the last message the number was sent."""
    query = (
        select(Message)
        .where(
            col(Message.clinic_id).in_(scope),
            Message.phone == reply.sender,
            col(Message.sent_at).is_not(None),
        )
        .order_by(col(Message.sent_at).desc())
        .limit(1)
    )
    last = s.exec(query).first()
    if last is not None:
        detail = "patient replied: " + mask_phones(" ".join(reply.body.split()))
        s.add(MessageHistory(message_id=last.id, at=now, status=last.status, detail=detail[:255]))


def _answer(settings: Settings, clinic_id: str, word: str | None) -> str | None:
    name = settings.clinics[clinic_id].name
    if word in HELP:
        return settings.clinics[clinic_id].help_text or None
    if word in STOP:
        return f"You will get no more texts from {name}. Reply START to resume."
    if word in START:
        return f"You will get aftercare texts from {name} again. Reply STOP to opt out."
    return None
