"""The Twilio sender: the real twilio client's async API, with its errors mapped once.

This is the only module that knows twilio's and aiohttp's exceptions. How they
map onto the `SendError` tree (see `service.delivery.sms.base`):

    429 or code 20429                      RetryableError   Twilio did not process it
    code 21610                             OptedOutError    recipient unsubscribed
    any other 4xx (21211, 21614, ...)      PermanentError   with Twilio's code
    5xx, or any other answer               AmbiguousError   may have been sent
    no answer within `timeout`             AmbiguousError   may have been sent
    connection refused / not established   RetryableError   nothing was sent
    connection lost during the exchange    AmbiguousError   may have been sent
"""

from __future__ import annotations

import asyncio
import functools
import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import aiohttp
from twilio.base.exceptions import TwilioException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from service.delivery.sms.base import (
    Accepted,
    AmbiguousError,
    OptedOutError,
    OutgoingSms,
    PermanentError,
    RetryableError,
    SendError,
)
from service.observability.masking import mask_phones

# A provider record counts as ours if it was created at most this long before
# the send was claimed: the provider's clock and ours may disagree a little.
CLOCK_SLACK = timedelta(minutes=5)

# Reconciliation looks at the recipient's newest messages only.
FIND_LIMIT = 50

_TRANSPORT_ERRORS = (TwilioException, TimeoutError, aiohttp.ClientError, OSError, ValueError)


class TwilioSender:
    """Sends through Twilio's Messages API (or a compatible server at `api_base_url`).

    Construct it inside a running event loop (an aiohttp `cleanup_ctx`): the
    twilio async HTTP client opens its aiohttp session at construction.
    """

    def __init__(
        self, *, account_sid: str, auth_token: str, api_base_url: str, timeout: float
    ) -> None:
        # No max_retries: twilio's retry client would retry a POST on 5xx and
        # could send the message twice. No timeout either: twilio ignores it.
        self._http = _HttpClient(logger=_quiet_logger())
        self._client = Client(account_sid, auth_token, http_client=self._http)
        self._client.api.base_url = api_base_url.rstrip("/")
        self._timeout = timeout

    async def send(self, sms: OutgoingSms) -> Accepted:
        """Create the message at Twilio; raise a `SendError` subclass when not accepted."""
        try:
            async with asyncio.timeout(self._timeout):
                record = await self._client.messages.create_async(**_create_params(sms))
        except _TRANSPORT_ERRORS as exc:
            raise _send_error(exc) from exc
        if not getattr(record, "sid", None):
            raise AmbiguousError("twilio accepted the request but answered without a sid")
        return _accepted(record)

    async def find(self, sms: OutgoingSms, *, since: datetime) -> Accepted | None:
        """Twilio's record of `sms` created at or after `since` (less the clock slack)."""
        window_start = since.astimezone(UTC) - CLOCK_SLACK
        try:
            async with asyncio.timeout(self._timeout):
                records = await self._client.messages.list_async(**_list_params(sms))
        except _TRANSPORT_ERRORS as exc:
            raise AmbiguousError(f"could not list messages: {_describe(exc)}") from exc
        for record in records:
            if _matches(record, sms, window_start):
                return _accepted(record)
        return None

    async def aclose(self) -> None:
        """Close the aiohttp session held by twilio's async HTTP client."""
        await self._http.close()


class _HttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]  # twilio is untyped
    """twilio's async HTTP client, the same requests at a lower cost per create.

    Given a dict, aiohttp builds a FormData for it, which makes a multipart writer (its
    boundary from `uuid4`) before it finds the form needs none: the body is encoded here, as
    aiohttp encodes it (`urlencode(..., doseq=True)`), under the Content-Type twilio already
    set. The account's credentials go as the Authorization header aiohttp would write for
    them, encoded once rather than through a `BasicAuth` per request. And twilio formats its
    request and response logs before logging them at INFO, which our logger drops
    (`_quiet_logger`): not formatted unless INFO is on (docs/benchmarks.md).
    """

    async def request(
        self, method: str, url: str, *args: Any, data: Any = None, **kwargs: Any
    ) -> Any:
        """twilio's request, a non-empty form given as the bytes aiohttp would make of it and
        the credentials as their header."""
        if isinstance(data, dict) and data:
            data = urlencode(list(data.items()), doseq=True).encode()
        auth, headers = kwargs.get("auth"), kwargs.get("headers")
        if isinstance(auth, tuple) and isinstance(headers, dict):
            kwargs["headers"] = {**headers, "Authorization": _basic_auth(*auth)}
            kwargs["auth"] = None
        return await super().request(method, url, *args, data=data, **kwargs)

    def log_request(self, kwargs: dict[str, Any]) -> None:
        """twilio's request log, when its INFO lines go anywhere."""
        if self.logger.isEnabledFor(logging.INFO):
            super().log_request(kwargs)

    def log_response(self, status_code: int, response: Any) -> None:
        """twilio's response log, when its INFO lines go anywhere."""
        if self.logger.isEnabledFor(logging.INFO):
            super().log_response(status_code, response)


@functools.lru_cache(maxsize=4)
def _basic_auth(login: str, password: str) -> str:
    """The Authorization header aiohttp's `BasicAuth(login, password)` writes (latin-1)."""
    return aiohttp.encode_basic_auth(login, password, encoding="latin1")


def _send_error(exc: BaseException) -> SendError:
    """The `SendError` that an exception raised while creating a message stands for."""
    if isinstance(exc, TwilioException):
        return _twilio_error(exc)
    if isinstance(exc, aiohttp.ClientConnectorError | ConnectionRefusedError):
        return RetryableError(f"could not connect to twilio: {_describe(exc)}")
    if isinstance(exc, TimeoutError):
        return AmbiguousError("twilio did not answer in time")
    return AmbiguousError(f"the exchange with twilio broke off: {_describe(exc)}")


def _twilio_error(exc: TwilioException) -> SendError:
    """Classify an error answer by its HTTP status and Twilio error code."""
    status = _as_int(getattr(exc, "status", None))
    code = _as_int(getattr(exc, "code", None))
    detail = f"twilio answered HTTP {status} with code {code}: {_describe(exc)}"
    if status == 429 or code == 20429:
        return RetryableError(detail, code=code)
    if code == 21610:
        return OptedOutError(detail, code=code)
    if status is not None and 400 <= status < 500:
        return PermanentError(detail, code=code)
    return AmbiguousError(detail, code=code)


def _create_params(sms: OutgoingSms) -> dict[str, Any]:
    """Keyword arguments for `messages.create_async`; unset options are left out."""
    params: dict[str, Any] = {"to": sms.to, "body": sms.body}
    if sms.from_number:
        params["from_"] = sms.from_number
    else:
        params["messaging_service_sid"] = sms.messaging_service_sid
    if sms.status_callback:
        params["status_callback"] = sms.status_callback
    if sms.validity_period is not None:
        params["validity_period"] = sms.validity_period
    return params


def _list_params(sms: OutgoingSms) -> dict[str, Any]:
    """Keyword arguments for `messages.list_async`: this recipient's newest messages."""
    # No DateSent filter: Twilio filters it by day on `date_sent`, which stays empty while a
    # message is queued, so a message we are reconciling could be left out. Newest first,
    # the window is checked on each record by `_matches`.
    params: dict[str, Any] = {"to": sms.to, "limit": FIND_LIMIT}
    if sms.from_number:
        params["from_"] = sms.from_number
    return params


def _matches(record: Any, sms: OutgoingSms, window_start: datetime) -> bool:
    """Whether a listed provider record is `sms`, created inside the window."""
    if record.body != sms.body:
        return False
    if sms.from_number and record.from_ != sms.from_number:
        return False
    created = record.date_created
    # A record without a creation time is taken as ours: a false match costs a
    # message not sent twice, a missed one a duplicate.
    return created is None or created >= window_start


def _accepted(record: Any) -> Accepted:
    """Our view of a twilio `MessageInstance`."""
    return Accepted(provider_id=str(record.sid), status=str(record.status or "queued"))


def _describe(exc: BaseException) -> str:
    """A one-line account of `exc` fit for logs: phone numbers masked."""
    if isinstance(exc, TwilioException):
        first = exc.args[0] if exc.args else None  # a bare TwilioException: (text, response)
        text = getattr(exc, "msg", None) or getattr(exc, "title", None) or first
        text = text or type(exc).__name__
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return mask_phones(str(text))


def _as_int(value: object) -> int | None:
    """`value` as an int, or None when it is not a number."""
    try:
        return int(str(value))
    except ValueError:
        return None


def _quiet_logger() -> logging.Logger:
    """A logger for twilio's HTTP client that drops its INFO request logs.

    twilio logs every list call's query string at INFO, which would put phone
    numbers in our logs (design invariant 8). This logger stands outside the
    logging hierarchy and passes nothing below WARNING.
    """
    return logging.Logger("aftercare.sms.twilio.http", level=logging.WARNING)
