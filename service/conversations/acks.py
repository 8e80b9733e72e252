"""`ACK` by text from an on-call number (contract §10, §14): every escalation has a short code its
alerts carry (`Reply ACK 4821`); `ACK 4821` acknowledges the clinic's open escalation of that
code, `ACK` alone the escalation last texted to that number (not the clinic's oldest, which
the nurse may never have seen). The answer names the escalation and what is still open."""

from __future__ import annotations

from datetime import datetime

from service.config import Settings
from service.conversations import escalations
from service.observability.masking import mask_phone
from service.storage import escalation_codes, escalation_rows, store
from service.storage.conversation_tables import Escalation
from service.storage.transactions import Session

LISTED = 5  # open codes an answer lists


def acknowledge(
    s: Session,
    settings: Settings,
    clinic_id: str,
    sender: str,
    *,
    code: str | None,
    now: datetime,
) -> str:
    """`ACK [code]` from an on-call number of `clinic_id`: the escalation it names
    acknowledged; the answer, naming it and the codes still open."""
    conn = s.connection()
    if code is not None:
        found = escalation_codes.named(conn, clinic_id, code)
    else:
        found = escalation_codes.last_alerted(conn, clinic_id, sender)
    escalation = None if found is None else escalation_rows.get(s, found)
    if escalation is None:
        name = settings.clinics[clinic_id].name
        missing = (
            f"{name} has no escalation with code {code}."
            if code
            else f"No alert of {name} was texted to this number."
        )
        return f"{missing} {_still_open(s, clinic_id)}"
    by = f"sms {mask_phone(sender)}"
    if escalation_rows.acknowledge(s, escalation.id, by=by, now=now):
        return f"Acknowledged: {_named(s, escalation)}. {_still_open(s, clinic_id)}"
    store.refresh(s, escalation)
    head = f"Already acknowledged by {escalation.acknowledged_by}"
    return f"{head}: {_named(s, escalation)}. {_still_open(s, clinic_id)}"


def _named(s: Session, escalation: Escalation) -> str:
    """An escalation as the nurse knows it from the alert: first name, last four digits."""
    about = escalations.subject(s, escalation)
    code = f" (ACK {escalation.code})" if escalation.code else ""
    return (
        f"{about.patient.first_name} (phone ending {about.patient.phone[-4:]}), treatment "
        f"{about.treatment.external_id}, {escalation.level}{code}"
    )


def _still_open(s: Session, clinic_id: str) -> str:
    """How many of the clinic's escalations are open, and the first few codes."""
    count = escalation_rows.open_count(s, clinic_id)
    if count == 0:
        return "Still open: 0. No open escalation left."
    codes = escalation_codes.open_codes(s.connection(), clinic_id)[:LISTED]
    listed = ", ".join(f"ACK {c}" for c in codes)
    return f"Still open: {count}" + (f" ({listed})." if listed else ".")
