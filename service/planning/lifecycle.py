"""A message's lifecycle: its statuses, where each may go next, and the kinds of text no
protocol planned. Pure: storage keeps the rows (`service.storage.models` re-exports these)."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """A message's status (docs/contract.md, "Messages")."""

    SCHEDULED = "scheduled"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SUPPRESSED = "suppressed"
    EXPIRED = "expired"


# The kind of a text to a clinic's on-call number about an escalation (docs/conversation.md):
# not the patient's, so neither their opt-outs, their corrections nor the footer apply to it.
ALERT = "alert"
# The kind of a text a clinic's staff wrote to a patient in the console: the
# patient's (their STOP, consent, number and footer apply) but no protocol's, so treatment
# corrections and cancellations leave it alone (docs/console-staff-texts.md).
STAFF = "staff"
# Kinds no protocol planned: clinic corrections and re-plans never touch them.
UNPLANNED = (ALERT, STAFF)

# Where each status may go next; a late or repeated update outside this map is ignored.
_NEXT: dict[Status, frozenset[Status]] = {
    Status.SCHEDULED: frozenset(
        {Status.SENDING, Status.CANCELLED, Status.SUPPRESSED, Status.EXPIRED}
    ),
    Status.SENDING: frozenset(
        {
            Status.SCHEDULED,
            Status.SENT,
            Status.DELIVERED,
            Status.UNDELIVERED,
            Status.FAILED,
            Status.CANCELLED,
            Status.EXPIRED,
        }
    ),
    Status.SENT: frozenset({Status.DELIVERED, Status.UNDELIVERED, Status.FAILED}),
}


def can_move(current: Status, new: Status) -> bool:
    """Whether `current` may move to `new` (statuses only move forward)."""
    return new in _NEXT.get(current, frozenset())
