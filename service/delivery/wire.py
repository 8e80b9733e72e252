"""What goes on the wire for a claimed message: its body as sent (footer on, punctuation in
GSM-7 forms unless `sms.gsm7 = "off"`), its segments, and how long Twilio may try (contract §18)."""

from __future__ import annotations

from dataclasses import dataclass, field
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
    store in place of the planned one so that what is stored is what was sent; `parts` the
    same for the messages merged into it (docs/merging.md), by id."""

    sms: OutgoingSms
    body: str
    segments: Segments
    parts: dict[str, str] = field(default_factory=dict)


def validity_period(expires_at: datetime, *, now: datetime) -> int:
    """The whole seconds left before `expires_at`, clamped to Twilio's 1-36,000."""
    left = int((expires_at - now).total_seconds())
    return max(VALIDITY_MIN, min(VALIDITY_MAX, left))


def wire(message: Claim, settings: Settings, *, now: datetime) -> Wire:
    """The text and options of `message` as the provider will get them at `now`. A merged
    text (docs/merging.md): the bodies joined by a blank line in plan order, the footer once
    (the lead's), and Twilio's validity the soonest expiry among them."""
    clinic = settings.clinics[message.clinic_id]
    bodies, footer = _texts(message, settings)
    body = bodies[0]
    merged = "\n\n".join(bodies)
    text = f"{merged}\n{footer}" if footer else merged
    expires_at = min([message.expires_at] + [p.expires_at for p in message.parts])
    sms = OutgoingSms(
        message_id=message.id,
        to=message.phone,
        body=text,
        from_number=clinic.from_number or None,
        messaging_service_sid=(
            clinic.messaging_service_sid or settings.twilio.messaging_service_sid or None
        ),
        status_callback=f"{settings.server.public_base_url}/v1/twilio/status",
        validity_period=validity_period(expires_at, now=now),
    )
    parts = {p.id: b for p, b in zip(message.parts, bodies[1:], strict=True)}
    return Wire(sms, body, segments(text), parts)


def _texts(message: Claim, settings: Settings) -> tuple[list[str], str]:
    """The bodies (the message's, then its parts') and the footer ('' when none is due), with
    plain punctuation when that is preferred and saves segments over the whole text (so never
    costs one)."""
    clinic = settings.clinics[message.clinic_id]
    footer = settings.sms.footer(message.locale, clinic.locale) if message.footer else ""
    bodies = [message.body] + [p.body for p in message.parts]
    merged = "\n\n".join(bodies)
    whole = f"{merged}\n{footer}" if footer else merged
    if settings.sms.gsm7 == "prefer" and prefer_gsm7(whole) != whole:
        return [plain_punctuation(b) for b in bodies], plain_punctuation(footer)
    return bodies, footer
