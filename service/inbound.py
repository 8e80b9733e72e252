"""What Twilio tells us: delivery statuses and patients' replies (STOP / START / HELP)."""

from __future__ import annotations

import logging
import re
from datetime import datetime

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from service import store
from service.config import Settings
from service.masking import mask_phone
from service.models import Inbound, Message, OptOut, Status, can_move

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


async def apply_status(
    sessions: async_sessionmaker[AsyncSession], *, sid: str, status: str, code: int | None,
    now: datetime,
) -> bool:
    """Move the message with provider id `sid` forward to `status`; whether it moved."""
    target = PROVIDER_STATUS.get(status)
    if target is None or not sid:
        return False  # queued/accepted/sending add nothing to what the create answer told us
    async with sessions.begin() as s:
        found = (await s.exec(select(Message).where(Message.provider_id == sid))).first()
        if found is None:
            log.info("status for an unknown message sid", extra={"sid": sid})
            return False
        allowed = [st for st in Status if can_move(st, target)]
        return await store.move(s, found.id, to=target, now=now, allowed_from=allowed,
                                detail=f"twilio: {status}", code=code,
                                values={"error_code": code} if code else None)


async def handle_reply(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, *, sender: str, to: str,
    body: str, provider_id: str | None, now: datetime,
) -> str | None:
    """Record a reply and act on its keyword; the text to answer with, if any."""
    clinics = [cid for cid, c in settings.clinics.items() if c.from_number and c.from_number == to]
    scope = clinics or list(settings.clinics)
    word = keyword(body)
    async with sessions.begin() as s:
        s.add(Inbound(clinic_id=scope[0] if len(scope) == 1 else None, provider_id=provider_id,
                      phone=sender, body=body[:1600], keyword=word, received_at=now))
        if word in STOP:
            for clinic_id in scope:
                await store.opt_out(s, clinic_id, sender, now=now, source="sms-stop")
        elif word in START:
            await s.exec(delete(OptOut).where(col(OptOut.clinic_id).in_(scope),
                                              col(OptOut.phone) == sender))
    log.info("reply received", extra={"from": mask_phone(sender), "keyword": word})
    return _answer(settings, scope[0], word)


def _answer(settings: Settings, clinic_id: str, word: str | None) -> str | None:
    name = settings.clinics[clinic_id].name
    if word in HELP:
        return settings.clinics[clinic_id].help_text or None
    if word in STOP:
        return f"You will get no more texts from {name}. Reply START to resume."
    if word in START:
        return f"You will get aftercare texts from {name} again. Reply STOP to opt out."
    return None
