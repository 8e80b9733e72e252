"""Aftercare's exception tree, mapped to HTTP answers in one place (`web.errors`).

AftercareError                 base of everything the service raises on purpose
├── ConfigError                the configuration is invalid (each problem with its TOML path)
└── ProblemError               a request the service refuses; carries its HTTP status
    ├── Unauthorized           401: missing/bad signature or token, unknown clinic
    ├── Forbidden              403: a token of another clinic, a forged Twilio callback
    ├── NotFound               404: no such treatment/message for this clinic
    ├── Conflict               409: a webhook id replayed with another body
    ├── RequestTimeout         408: the body did not arrive within `server.body_timeout`
    ├── PayloadTooLarge        413: body over `server.max_body_bytes`
    ├── UnsupportedMediaType   415: not application/json
    ├── Unprocessable          422: a field is missing or wrong; lists every field
    └── TooManyRequests        429: over the clinic's `rate_limit`; says when to retry
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class AftercareError(Exception):
    """Raised on purpose by Aftercare; never a bug."""


class ConfigError(AftercareError):
    """Raised when the configuration is invalid; `problems` lists each as "path: message"."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("invalid configuration:\n" + "\n".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class FieldError:
    """One wrong field of a request body, named by its dotted path."""

    field: str
    message: str


class ProblemError(AftercareError):
    """Raised when a request is refused; rendered as RFC 9457 problem+json."""

    status = 400
    title = "Bad request"
    closes = False  # the connection is closed after the answer: its body was not read whole

    def __init__(self, detail: str, *, errors: Sequence[FieldError] = ()) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = list(errors)

    def headers(self) -> dict[str, str]:
        """Headers the answer carries besides the problem's body."""
        return {}


class Unauthorized(ProblemError):
    """Raised when a request carries no valid signature or token for the clinic."""

    status = 401
    title = "Unauthorized"


class Forbidden(ProblemError):
    """Raised when valid credentials do not cover the resource asked for."""

    status = 403
    title = "Forbidden"


class NotFound(ProblemError):
    """Raised when the clinic has no such resource."""

    status = 404
    title = "Not found"


class Conflict(ProblemError):
    """Raised when a webhook id is reused with a different body."""

    status = 409
    title = "Conflict"


class PayloadTooLarge(ProblemError):
    """Raised when a body exceeds `server.max_body_bytes`."""

    status = 413
    title = "Payload too large"


class UnsupportedMediaType(ProblemError):
    """Raised when an event is not sent as application/json."""

    status = 415
    title = "Unsupported media type"


class Unprocessable(ProblemError):
    """Raised when a body is not valid JSON or a field is missing or wrong."""

    status = 422
    title = "Unprocessable content"


class RequestTimeout(ProblemError):
    """Raised when a request's body has not arrived whole within `server.body_timeout`."""

    status = 408
    title = "Request timeout"
    closes = True


class BodyCutShort(ProblemError):
    """Raised when the client closed the connection, or broke its framing, mid-body."""

    closes = True


class TooManyRequests(ProblemError):
    """Raised when a clinic sends events faster than its `rate_limit`."""

    status = 429
    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        """`Retry-After` in whole seconds."""
        return {"Retry-After": str(self.retry_after)}
