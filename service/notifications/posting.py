"""One signed POST of a notification to its clinic's endpoint, and what it answered.

Signed per Standard Webhooks with every one of the clinic's secrets, one `v1,` signature each,
space-separated in `webhook-signature` (`webhook-id` is the notification's id on every
attempt): a receiver that knows any one of them verifies it, so a clinic rolls its secret by
adding the new one, moving its receiver over, then removing the old one. The signature's
timestamp is the wall clock's: it is what the receiver checks against its own (±5 minutes),
whatever clock schedules the attempts. Every attempt has a timeout; redirects are not followed
(a 3xx is a failed attempt); the answer's body is never read.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiohttp
from aiohttp.abc import AbstractResolver
from standardwebhooks import Webhook

from service.config import ClinicNotifications
from service.notifications.resolving import GuardedResolver, PrivateAddressError


@dataclass(frozen=True, slots=True)
class Answer:
    """What one attempt got: an HTTP status, or the error that stood in for one."""

    http_status: int | None
    error: str | None

    @property
    def delivered(self) -> bool:
        """A 2xx answer (contract §11)."""
        return self.http_status is not None and 200 <= self.http_status < 300


def signed_headers(target: ClinicNotifications, notification_id: str, body: str) -> dict[str, str]:
    """The Standard Webhooks headers for `body`, signed now with each of the secrets."""
    stamp = datetime.fromtimestamp(int(time.time()), UTC)
    signatures = [
        Webhook(secret.get_secret_value()).sign(notification_id, stamp, body)
        for secret in target.secrets
    ]
    return {
        "webhook-id": notification_id,
        "webhook-timestamp": str(int(stamp.timestamp())),
        "webhook-signature": " ".join(signatures),
        "content-type": "application/json",
        "user-agent": "aftercare-notifications/1",
    }


async def post(
    http: aiohttp.ClientSession,
    target: ClinicNotifications,
    *,
    notification_id: str,
    body: str,
    timeout: timedelta,
) -> Answer:
    """POST `body` to the clinic's endpoint once; what it answered (never raises for the
    network's or the endpoint's failures)."""
    headers = signed_headers(target, notification_id, body)
    seconds = timeout.total_seconds()
    try:
        async with http.post(
            target.url,
            data=body.encode(),
            headers=headers,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=seconds),
        ) as response:
            status = response.status
    except TimeoutError:
        return Answer(None, f"timeout after {seconds:g}s")
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, PrivateAddressError):
            return Answer(None, f"refused: {exc.os_error}")
        return Answer(None, f"connection failed: {type(exc.os_error).__name__}")
    except aiohttp.ClientError as exc:
        return Answer(None, type(exc).__name__)
    if 300 <= status < 400:
        return Answer(status, f"HTTP {status}: redirects are not followed")
    return Answer(status, None if 200 <= status < 300 else f"HTTP {status}")


def client_session(
    base: AbstractResolver, *, allow_private_network: bool, limit: int
) -> aiohttp.ClientSession:
    """A session whose connector resolves names with `base`, refusing private and link-local
    answers unless `allow_private_network` (`resolving`); at most `limit` connections."""
    resolver = base if allow_private_network else GuardedResolver(base)
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit, resolver=resolver))
