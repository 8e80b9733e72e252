"""What Twilio tells us back: an inbound text (`Reply`) and which delivery statuses count.

What a reply means (STOP, a check-in's answer, ACK) is the conversation's
(`service.conversations.inbound`), handed to the return path as a `ReplyHandler`: a store
function the reply batch runs in its transaction.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from service.storage.models import Status
from service.storage.transactions import Session

PROVIDER_STATUS = {
    "sent": Status.SENT,
    "delivered": Status.DELIVERED,
    "undelivered": Status.UNDELIVERED,
    "failed": Status.FAILED,
}


@dataclass(frozen=True)
class MediaRef:
    """An item of an MMS as Twilio's form names it (`MediaUrlN`, `MediaContentTypeN`)."""

    url: str
    content_type: str


@dataclass(frozen=True)
class Reply:
    """A text to a clinic number, as Twilio posts it; `sender` the number behind `From`
    (`whatsapp:+14155550123` is `+14155550123` by `channel` "whatsapp")."""

    sender: str
    to: str
    body: str
    provider_id: str | None = None
    messaging_service_sid: str | None = None
    channel: str | None = None
    media: tuple[MediaRef, ...] = ()


# A number as Twilio writes it (E.164: "+", at most 15 digits), behind an optional channel
# prefix ("whatsapp:", "rcs:"). Nothing else can be a number we text, nor fit our columns.
_FROM = re.compile(r"(?:([A-Za-z][A-Za-z0-9-]{0,15}):)?(\+[0-9]{6,15})")
_SID = re.compile(r"[A-Za-z0-9]{2,64}")  # Twilio's are 34: "SM" or "MM" and 32 hex digits


class Unreadable(Exception):
    """Raised when an inbound text names no number we could have texted (`reason` "sender")
    or carries a `MessageSid` no Twilio message has (`reason` "sid")."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def from_form(form: Mapping[str, str]) -> Reply:
    """The reply Twilio's inbound form describes; Unreadable when it is none we can keep."""
    found = _FROM.fullmatch(form.get("From", ""))
    if found is None:
        raise Unreadable("sender")
    sid = form.get("MessageSid") or None
    if sid is not None and _SID.fullmatch(sid) is None:
        raise Unreadable("sid")
    return Reply(
        sender=found[2],
        to=form.get("To", ""),
        body=form.get("Body", ""),
        provider_id=sid,
        messaging_service_sid=form.get("MessagingServiceSid"),
        channel=found[1].lower() if found[1] else None,
        media=_media(form),
    )


MAX_MEDIA = 10  # Twilio's most a message


def _media(form: Mapping[str, str]) -> tuple[MediaRef, ...]:
    """The MMS's items (`NumMedia` of them, at most Twilio's ten); none when not a number."""
    count = form.get("NumMedia", "0")
    n = min(int(count), MAX_MEDIA) if count.isdigit() else 0
    return tuple(
        MediaRef(form.get(f"MediaUrl{i}", ""), form.get(f"MediaContentType{i}", "").lower())
        for i in range(n)
    )


@dataclass(frozen=True)
class Handled:
    """What became of a reply: the answer (TwiML), its keyword (metrics), messages to arm."""

    answer: str | None
    keyword: str | None = None
    due: list[datetime] = field(default_factory=list)
    again: bool = False  # Twilio's retry of a reply already kept: answered as the first time


# Records a reply and acts on it in the transaction of the session; run by the return path.
ReplyHandler = Callable[[Session, Reply, datetime], Handled]
