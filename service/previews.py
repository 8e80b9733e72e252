"""`aftercare preview` from the settings: the configured protocol, clinic and `[sms]` as the
plain values `planning.preview.table` takes, without touching the database."""

from __future__ import annotations

from datetime import UTC, datetime

from service.config import Settings
from service.planning import protocols
from service.planning.preview import Example, Texting, table
from service.planning.timing import zone


def preview(
    settings: Settings,
    *,
    protocol: str,
    clinic_id: str | None,
    completed_at: datetime | None,
    timezone: str | None,
    session: int,
    of: int | None,
    appointment_at: datetime | None = None,
    now: datetime | None = None,
) -> str:
    """The plan of `protocol` for an example patient, one row a message.

    With `appointment_at`, the prep messages of that appointment (session `session`) as if it
    were booked at `now` (default: the clock's now); else the plan of a treatment completed
    at `completed_at` (default: now). An unknown protocol or clinic is a ValueError.
    """
    if protocol not in settings.protocols:
        raise ValueError(f"unknown protocol {protocol!r}; known: {', '.join(settings.protocols)}")
    cid = clinic_id or next(iter(settings.clinics))
    if cid not in settings.clinics:
        raise ValueError(f"unknown clinic {cid!r}; known: {', '.join(settings.clinics)}")
    clinic, sms = settings.clinics[cid], settings.sms
    now = now or datetime.now(UTC)
    example = Example(
        tz=zone(timezone or clinic.timezone),
        session=session,
        sessions=of or max(session, 3),
        completed_at=completed_at or now,
        now=now,
        appointment_at=appointment_at,
    )
    texting = Texting(
        footer=sms.footer(clinic.locale, clinic.locale),
        merge_window=sms.merge_window,
        max_per_day=sms.max_per_day,
        prefer_gsm7=sms.gsm7 == "prefer",
    )
    view = protocols.ClinicView(name=clinic.name, locale=clinic.locale, quiet_hours=clinic.quiet())
    return table(
        settings.protocol(protocol, locale=clinic.locale),
        view,
        example,
        texting,
        default_expires_after=settings.scheduler.default_expires_after,
    )
