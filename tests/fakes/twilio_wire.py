"""Twilio's wire format for Messages, as both fakes speak it: tests/fakes/twilio.py (aiohttp,
behaviours, auth) and bench/fake_twilio.py (a bare asyncio protocol, for throughput).

The resource a create or a list answers with, the list page around it, an error body, and
the status callback Twilio posts (its form and its X-Twilio-Signature). No pytest, no aiohttp
here: the bench's fake imports this in its own process.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from twilio.request_validator import RequestValidator

API_VERSION = "2010-04-01"
ACCOUNT_SID = "AC" + "0" * 32
DEFAULT_FROM = "+15005550006"  # the From of a callback for a message sent through a service
UNDELIVERED_CODE = 30003  # Unreachable destination handset


def messages_path(account_sid: str) -> str:
    """The Messages list resource's path: POST to create, GET to list."""
    return f"/{API_VERSION}/Accounts/{account_sid}/Messages.json"


def rfc2822(epoch: float) -> str:
    """A time as Twilio writes `date_created`: 'Wed, 02 Dec 2026 13:53:53 +0000'."""
    return format_datetime(datetime.fromtimestamp(epoch, UTC))


def message_resource(
    *,
    sid: str,
    account_sid: str,
    to: str,
    from_: str | None,
    body: str,
    date_created: str,
    status: str = "queued",
    service: str | None = None,
    error_code: int | None = None,
) -> dict[str, Any]:
    """A Message as Twilio answers a create, a fetch or (in a page) a list."""
    return {
        "sid": sid,
        "account_sid": account_sid,
        "messaging_service_sid": service,
        "to": to,
        "from": from_,
        "body": body,
        "status": status,
        "num_segments": "1",
        "num_media": "0",
        "direction": "outbound-api",
        "api_version": API_VERSION,
        "price": None,
        "price_unit": "USD",
        "error_code": error_code,
        "error_message": None,
        "uri": f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}.json",
        "date_created": date_created,
        "date_updated": date_created,
        "date_sent": None if status in ("queued", "accepted", "sending") else date_created,
        "subresource_uris": {},
    }


def message_page(resources: list[dict[str, Any]], *, uri: str, page_size: int) -> dict[str, Any]:
    """One page of a list call, the only page: `resources` newest first."""
    return {
        "messages": resources,
        "end": max(0, len(resources) - 1),
        "first_page_uri": uri,
        "next_page_uri": None,
        "page": 0,
        "page_size": page_size,
        "previous_page_uri": None,
        "start": 0,
        "uri": uri,
    }


def error_body(status: int, code: int, message: str) -> dict[str, Any]:
    """Twilio's JSON body for a refused request."""
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def callback_form(
    *,
    sid: str,
    account_sid: str,
    to: str,
    from_: str | None,
    status: str,
    error_code: int | None = None,
) -> dict[str, str]:
    """The form of a status callback announcing `status` (with ErrorCode when it failed)."""
    form = {
        "MessageSid": sid,
        "SmsSid": sid,
        "AccountSid": account_sid,
        "MessageStatus": status,
        "SmsStatus": status,
        "To": to,
        "From": from_ or DEFAULT_FROM,
        "ApiVersion": API_VERSION,
    }
    if error_code:
        form["ErrorCode"] = str(error_code)
    return form


def sign_twilio(auth_token: str, url: str, params: dict[str, str]) -> str:
    """The X-Twilio-Signature Twilio would send for a form POST to `url`."""
    return str(RequestValidator(auth_token).compute_signature(url, params))
