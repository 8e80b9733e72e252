"""What Twilio tells us back: an inbound text (`Reply`) and which delivery statuses count.

What a reply means (STOP, a check-in's answer, ACK) is the conversation's
(`service.conversations.inbound`), handed to the return path as a `ReplyHandler`: a store
function the reply batch runs in its transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session

from service.storage.models import Status

PROVIDER_STATUS = {
    "sent": Status.SENT,
    "delivered": Status.DELIVERED,
    "undelivered": Status.UNDELIVERED,
    "failed": Status.FAILED,
}


@dataclass(frozen=True)
class Reply:
    """A text to a clinic number, as Twilio posts it."""

    sender: str
    to: str
    body: str
    provider_id: str | None = None
    messaging_service_sid: str | None = None


@dataclass(frozen=True)
class Handled:
    """What became of a reply: the answer (TwiML), its keyword (metrics), messages to arm."""

    answer: str | None
    keyword: str | None = None
    due: list[datetime] = field(default_factory=list)


# Records a reply and acts on it in the transaction of the session; run by the return path.
ReplyHandler = Callable[[Session, Reply, datetime], Handled]
