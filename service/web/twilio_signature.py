"""X-Twilio-Signature (contract §7), checked as twilio's `RequestValidator.validate` checks a
form POST, at a fraction of its cost.

`RequestValidator.validate` parses the URL, builds it with and without its port and computes
both HMAC-SHA1 signatures for every request, keying a new HMAC each time: on a burst's status
callbacks it was the largest share of a callback's CPU (docs/benchmarks.md, "Per-message
cost"). Here the URL's two forms are kept per URL (the service has two webhook paths), the
keyed HMAC is copied rather than keyed again, and the form with the port is tried only when
the one without it does not match. Same answer for every form: a dict of strings, each name
once, so each name's values are `[value]` (tests/test_twilio_signature.py checks it against
twilio's own validator).
"""

from __future__ import annotations

import base64
import hmac
from functools import lru_cache
from hashlib import sha1
from urllib.parse import urlparse

from twilio.request_validator import add_port, remove_port

URL_FORMS = 64  # distinct URLs whose two forms are kept (a query string makes one anew)


class TwilioSignature:
    """Checks X-Twilio-Signature for one auth token."""

    def __init__(self, token: str) -> None:
        self._keyed = hmac.new(token.encode("utf-8"), digestmod=sha1)

    def valid(self, url: str, form: dict[str, str], signature: str) -> bool:
        """Whether `signature` signs `url` (with or without its port) and `form`."""
        without_port, with_port = _url_forms(url)
        signed = "".join(name + form[name] for name in sorted(form))
        given = signature.encode("utf-8")
        return hmac.compare_digest(self._sign(without_port + signed), given) or (
            hmac.compare_digest(self._sign(with_port + signed), given)
        )

    def _sign(self, text: str) -> bytes:
        mac = self._keyed.copy()
        mac.update(text.encode("utf-8"))
        return base64.b64encode(mac.digest())


@lru_cache(maxsize=4)
def for_token(token: str) -> TwilioSignature:
    """The checker for `token`, made once (the settings' token does not change)."""
    return TwilioSignature(token)


@lru_cache(maxsize=URL_FORMS)
def _url_forms(url: str) -> tuple[str, str]:
    """`url` without its port and with it, as twilio's validator writes them."""
    parsed = urlparse(url)
    return remove_port(parsed), add_port(parsed)
