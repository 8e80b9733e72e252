"""The sender interface the dispatcher talks to, and the outcomes a send can have.

    SendError                a send did not (certainly) succeed
    ├── PermanentError       refused for good (21211, 21614, any unknown 4xx): never retry
    │   └── OptedOutError    21610: the recipient unsubscribed at the carrier/Twilio
    ├── RetryableError       certainly not sent (429, connection refused): retry with backoff
    └── AmbiguousError       may have been sent (timeout, 5xx): reconcile before any retry

Only the sender modules know a provider's exceptions; the dispatcher sees only these.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class OutgoingSms:
    """One message to hand to the provider."""

    message_id: str
    to: str
    body: str
    from_number: str | None = None
    messaging_service_sid: str | None = None
    status_callback: str | None = None
    validity_period: int | None = None  # seconds the provider may keep trying (contract §18)


@dataclass(frozen=True)
class Accepted:
    """The provider took the message: its id and the status it reported."""

    provider_id: str
    status: str


class SendError(Exception):
    """Raised when a send did not certainly succeed; `code` is the provider's error code."""

    def __init__(self, detail: str, *, code: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code


class PermanentError(SendError):
    """Raised when the provider refused the message for good."""


class OptedOutError(PermanentError):
    """Raised when the recipient has unsubscribed (Twilio 21610)."""


class RetryableError(SendError):
    """Raised when the message was certainly not sent and may be tried again later."""


class AmbiguousError(SendError):
    """Raised when the message may or may not have been sent (timeout, 5xx)."""


class SmsSender(Protocol):
    """What the dispatcher needs from a provider."""

    async def send(self, sms: OutgoingSms) -> Accepted:
        """Hand `sms` to the provider; raise a `SendError` subclass when not accepted."""
        ...

    async def find(self, sms: OutgoingSms, *, since: datetime) -> Accepted | None:
        """The provider's record of `sms` sent at or after `since`, if there is one."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
