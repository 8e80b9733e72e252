"""`aftercare preview`: a protocol's plan as a table, without touching the database."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo

from service.config import Settings
from service.planning import protocols
from service.planning.templates import segments
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
) -> str:
    """The plan of `protocol` for an example patient, one row a message."""
    if protocol not in settings.protocols:
        raise ValueError(f"unknown protocol {protocol!r}; known: {', '.join(settings.protocols)}")
    cid = clinic_id or next(iter(settings.clinics))
    if cid not in settings.clinics:
        raise ValueError(f"unknown clinic {cid!r}; known: {', '.join(settings.clinics)}")
    clinic = settings.clinics[cid]
    tz = zone(timezone or clinic.timezone)
    planned = protocols.plan(
        settings.protocol(protocol, locale=clinic.locale),
        protocols.Treatment(
            completed_at=completed_at or datetime.now(UTC),
            session_number=session,
            sessions_planned=of or max(session, 3),
        ),
        protocols.Recipient(first_name="Ana", timezone=tz, locale=clinic.locale),
        protocols.ClinicView(name=clinic.name, locale=clinic.locale, quiet_hours=clinic.quiet()),
        default_expires_after=settings.scheduler.default_expires_after,
    )
    footer = settings.sms.footer(clinic.locale, clinic.locale)
    return _table(_rows(planned, tz, footer))


def _rows(
    planned: Sequence[protocols.PlannedMessage], tz: tzinfo, footer: str
) -> list[tuple[str, ...]]:
    """The header, then one row a message (the footer on the first, as it would be sent)."""
    rows: list[tuple[str, ...]] = [("local time", "UTC", "step", "kind", "segments", "text")]
    for i, p in enumerate(planned):
        body = f"{p.body}\n{footer}" if i == 0 and footer else p.body
        seg = segments(body)
        rows.append(
            (
                p.send_at.astimezone(tz).strftime("%a %Y-%m-%d %H:%M %Z"),
                p.send_at.strftime("%Y-%m-%d %H:%M"),
                p.step,
                p.kind,
                f"{seg.count} {seg.encoding}",
                body.replace("\n", " / "),
            )
        )
    return rows


def _table(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1] for r in rows
    ]
    return "\n".join(lines)
