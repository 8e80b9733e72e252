"""Why a message did not go out: the text of its `reason` column (and of its history entry),
one constant each, so that every path that cancels, suppresses or expires a message writes
the same words (contract §8 shows them to clinics)."""

from __future__ import annotations

from service.planning.day import DAILY_LIMIT_REASON
from service.planning.quiet import QUIET_HOURS_REASON

# Suppressed when planned.
NO_CONSENT = "patient has not consented to SMS"
OPTED_OUT = "number opted out (STOP)"


def opted_out_of(word: str) -> str:
    """Suppressed when planned, or cancelled, after `STOP <WORD>`: `opted out of serum`."""
    return f"opted out of {word.lower()}"


# Cancelled by a correction, or found cancelled when claimed.
TREATMENT_CANCELLED = "treatment cancelled"
CONSENT_WITHDRAWN = "consent withdrawn"
NOT_IN_NEW_ZONE_PLAN = "not in the plan for the patient's new time zone"
# Cancelled when planned: its step's in_quiet_hours = "skip" met quiet hours (contract §15).
QUIET_HOURS = QUIET_HOURS_REASON
# Cancelled when planned or re-planned: past the patient's texts for a local day (docs/day.md).
DAILY_LIMIT = DAILY_LIMIT_REASON
# Expired (also a prep time already past when its appointment is planned: never sent late).
TOO_LATE_ON_ARRIVAL = "its time had passed when the event arrived"
TOO_LATE_IN_NEW_ZONE = "its time had passed in the patient's new time zone"
EXPIRED_BEFORE_SENT = "could not be sent before its expiry"
EXPIRED_WHILE_RETRYING = "expired while retrying"
# Failed.
RECIPIENT_UNSUBSCRIBED = "recipient unsubscribed"
# Appointments and series (contract §13).
NEXT_SESSION_BOOKED = "next session booked"
APPOINTMENT_CANCELLED = "appointment cancelled"
NOT_IN_MOVED_APPOINTMENT_PLAN = "not in the plan for the appointment's new time"
TOO_LATE_FOR_MOVED_APPOINTMENT = "its time had passed for the appointment's new time"
NO_MORE_SESSIONS = "no more sessions planned"
NOT_IN_CORRECTED_PLAN = "not in the plan for the corrected treatment"
TOO_LATE_AFTER_CORRECTION = "its time had passed after the correction"
# Erasure (contract §19).
PATIENT_ERASED = "patient erased"
