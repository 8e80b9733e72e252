"""The service's X-Twilio-Signature check answers as twilio's own `RequestValidator.validate`
for form POSTs (service/web/twilio_signature.py): URLs with and without a port, http and
https, a query string, an empty form, non-ASCII values, signatures made for the URL's other
form, for other params, with another token, and garbage."""

from __future__ import annotations

import itertools

import pytest
from twilio.request_validator import RequestValidator

from service.web.twilio_signature import TwilioSignature

TOKEN = "12345abcdef"
URLS = [
    "https://aftercare.example/v1/twilio/status",
    "https://aftercare.example:443/v1/twilio/status",
    "http://aftercare.example/v1/twilio/inbound",
    "http://127.0.0.1:8080/v1/twilio/status?x=1&y=%C3%A9",
    "https://aftercare.example:8443/v1/twilio/status",
]
FORMS = [
    {},
    {"MessageSid": "SM" + "a" * 32, "MessageStatus": "delivered", "To": "+14155550100"},
    {"Body": "Merci \u2013 à demain ✨", "From": "+33612345678", "a": "", "B": "x"},
]


def _signatures(url: str, form: dict[str, str]) -> list[str]:
    """Twilio's signature of this request and of its neighbours, and some garbage."""
    twilio = RequestValidator(TOKEN)
    other_token = RequestValidator(TOKEN + "x")
    made = [twilio.compute_signature(u, form) for u in URLS]
    made += [other_token.compute_signature(url, form)]
    made += [twilio.compute_signature(url, {**form, "Extra": "1"})]
    return [*made, "forged", "é" * 28, made[0][:-1]]


@pytest.mark.parametrize(("url", "form"), list(itertools.product(URLS, FORMS)))
def test_answers_as_twilios_validator(url: str, form: dict[str, str]) -> None:
    """Every signature is accepted exactly when twilio's validator accepts it, and the
    request's own signature is."""
    ours, theirs = TwilioSignature(TOKEN), RequestValidator(TOKEN)
    for signature in _signatures(url, form):
        assert ours.valid(url, form, signature) == theirs.validate(url, form, signature)
    assert ours.valid(url, form, theirs.compute_signature(url, form))
