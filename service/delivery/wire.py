"""What goes on the wire for a claimed message: its body as sent (footer on, punctuation in
GSM-7 forms unless `sms.gsm7 = "off"`), its segments, and how long Twilio may try (SPEC §18)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from service.config import Settings
from service.delivery.sms.base import OutgoingSms
from service.planning.gsm7 import plain_punctuation, prefer_gsm7
from service.planning.templates import Segments, segments
from service.storage.claims import Claim

# Twilio's bounds for ValidityPeriod, in seconds.
VALIDITY_MIN, VALIDITY_MAX = 1, 36_000


@dataclass(frozen=True)
class Wire:
    """`sms` to hand the provider; `body` the message's own text in it (footer left out), to
    store in place of the planned one so that what is stored is what was sent."""

    sms: OutgoingSms
    body: str
    segments: Segments


def validity_period(expires_at: datetime, *, now: datetime) -> int:
    """The whole seconds left before `expires_at`, clamped to Twilio's 1-36,000."""
    left = int((expires_at - now).total_seconds())
    return max(VALIDITY_MIN, min(VALIDITY_MAX, left))


def wire(message: Claim, settings: Settings, *, now: datetime) -> Wire:
    """The text and options of `message` as the provider will get them at `now`."""
    clinic = settings.clinics[message.clinic_id]
    body, footer = _texts(message, settings)
    text = f"{body}\n{footer}" if footer else body
    sms = OutgoingSms(
        message_id=message.id,
        to=message.phone,
        body=text,
        from_number=clinic.from_number or None,
        messaging_service_sid=(
            clinic.messaging_service_sid or settings.twilio.messaging_service_sid or None
        ),
        status_callback=f"{settings.server.public_base_url}/v1/twilio/status",
        validity_period=validity_period(message.expires_at, now=now),
    )
    return Wire(sms, body, segments(text))


def _texts(message: Claim, settings: Settings) -> tuple[str, str]:
    """The body and the footer ('' when none is due), with plain punctuation when that is
    preferred and saves segments over the whole text (so never costs one)."""
    clinic = settings.clinics[message.clinic_id]
    footer = settings.sms.footer(message.locale, clinic.locale) if message.footer else ""
    body = message.body
    whole = f"{body}\n{footer}" if footer else body
    if settings.sms.gsm7 == "prefer" and prefer_gsm7(whole) != whole:
        return plain_punctuation(body), plain_punctuation(footer)
    return body, footer
