"""The edge's settings rules (contract §14, "The edge"): how strong a secret or a token must be,
where `public_base_url` may be plain http, and what a clinic's `rate_limit` says.

Messages name the rule and never the value: a problem line may be pasted into a ticket.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, SecretStr

from service.config.addresses import is_loopback

MIN_SECRET_BYTES = 24
MIN_TOKEN_CHARS = 32
GENERATE_SECRET = (
    "python -c \"import base64,secrets; print('whsec_' + "
    'base64.b64encode(secrets.token_bytes(32)).decode())"'
)
GENERATE_TOKEN = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'


def strong_secret(value: SecretStr) -> SecretStr:
    """`value` if it decodes to at least 24 bytes; one that does not decode at all is left to
    the list's own check (service.config.notifications.whsec_secrets), which names it."""
    try:
        # As standardwebhooks reads it: an optional `whsec_`, then base64.
        key = base64.b64decode(value.get_secret_value().removeprefix("whsec_"))
    except (binascii.Error, ValueError):
        return value
    if len(key) < MIN_SECRET_BYTES:
        raise ValueError(
            f"decodes to {len(key)} bytes; a secret needs at least {MIN_SECRET_BYTES} "
            f"(generate one: {GENERATE_SECRET})"
        )
    return value


def strong_token(value: SecretStr) -> SecretStr:
    """`value` if it has at least 32 characters."""
    length = len(value.get_secret_value())
    if length < MIN_TOKEN_CHARS:
        raise ValueError(
            f"has {length} characters; a token needs at least {MIN_TOKEN_CHARS} "
            f"(generate one: {GENERATE_TOKEN})"
        )
    return value


WebhookSecret = Annotated[SecretStr, AfterValidator(strong_secret)]
ApiToken = Annotated[SecretStr, AfterValidator(strong_token)]


def https_unless_loopback(url: str) -> str:
    """`url` if it is https, or http to a loopback host; else ValueError."""
    parts = urlsplit(url)
    if parts.scheme == "http" and not is_loopback(parts.hostname or ""):
        raise ValueError(
            "must be https:// (plain http:// only to 127.0.0.1, ::1 or localhost): Twilio's "
            "callbacks and patients' replies would cross the network in clear text"
        )
    return url


def public_host(url: str) -> str:
    """The host of `url` (`public_base_url`), as `is_loopback` reads it."""
    return urlsplit(url).hostname or ""


@dataclass(frozen=True)
class Rate:
    """A token bucket's shape: `per_second` refilled, up to `burst` held."""

    per_second: float
    burst: int


_RATE = re.compile(r"^\s*(\d+)\s*/\s*(s|m|h)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}


def parse_rate(text: str) -> Rate:
    """`"50/s"`, `"600/m"` or `"3000/h"`: that many a second, minute or hour, with a burst of
    twice the count; else ValueError."""
    match = _RATE.match(text)
    if match is None or int(match.group(1)) < 1:
        raise ValueError(f"not a rate: {text!r}; write e.g. '50/s', '600/m' or '3000/h'")
    count = int(match.group(1))
    return Rate(per_second=count / _UNIT_SECONDS[match.group(2)], burst=2 * count)


def _rate(value: str) -> str:
    parse_rate(value)
    return value


RateLimit = Annotated[str, AfterValidator(_rate)]
