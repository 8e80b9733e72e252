"""Signing in (contract §16): lockout by account, throttling by address, the same answer for a
wrong email and a wrong password, an audit row and a metric for every attempt.

Order: a throttled address, then a locked account (by the email as typed, known or not, so
that locking tells nothing of which emails exist) are refused before any password is checked;
then the password is verified (against a dummy hash for an unknown or disabled account); a
failure is counted against both the account and the address.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from service.console import lockout
from service.console.deps import Console
from service.storage import audit, staff, staff_sessions
from service.storage.staff import Account
from service.storage.transactions import Session

SIGN_IN = "sign_in"
SIGN_IN_FAILED = "sign_in_failed"
NO_CLINIC = "-"  # the audit's clinic for an email no account has (no clinic's audit lists it)
ACTOR_LENGTH = 255


class Outcome(StrEnum):
    """How an attempt ended (the metric's `outcome` label)."""

    OK = "ok"
    FAILED = "failed"
    LOCKED = "locked"
    THROTTLED = "throttled"


@dataclass(frozen=True, kw_only=True)
class Attempt:
    """An attempt's outcome; the account (when OK) and until when it is refused (else)."""

    outcome: Outcome
    account: Account | None = None
    until: datetime | None = None


def normal_email(typed: str) -> str:
    """The email as accounts store it: trimmed, lower-cased."""
    return typed.strip().lower()


async def attempt(console: Console, *, email: str, password: str, address: str) -> Attempt:
    """Try to sign in as `email` from `address`; audited and counted whatever the outcome."""
    now = console.clock.now()
    keys = (f"account:{email[:300]}", f"address:{address[:60]}")
    account = await console.transactions.read(lambda s: staff.find(s, email))
    refused = await console.transactions.read(lambda s: _refusal(s, keys, now))
    result = refused or await _checked(console, account, password)
    await console.transactions.write(lambda s: _record(s, result, email, keys, account, now))
    console.metrics.console_sign_ins.labels(result.outcome.value).inc()
    return result


def _refusal(s: Session, keys: tuple[str, str], now: datetime) -> Attempt | None:
    since = now - lockout.LOOK_BACK
    for key, outcome in zip(keys[::-1], (Outcome.THROTTLED, Outcome.LOCKED), strict=True):
        until = lockout.locked_until(staff_sessions.failures(s, key, since=since), now=now)
        if until is not None:
            return Attempt(outcome=outcome, until=until)
    return None


async def _checked(console: Console, account: Account | None, password: str) -> Attempt:
    usable = account is not None and account.disabled_at is None and account.clinic_ids
    stored = account.password_hash if usable and account else None
    if not await console.passwords.verify(stored, password):
        return Attempt(outcome=Outcome.FAILED)
    assert account is not None
    new = await console.passwords.rehashed(account.password_hash, password)
    if new is not None:
        old, staff_id = account.password_hash, account.id
        await console.transactions.write(lambda s: staff.rehash(s, staff_id, old=old, new=new))
    return Attempt(outcome=Outcome.OK, account=account)


def _record(
    s: Session,
    result: Attempt,
    email: str,
    keys: tuple[str, str],
    account: Account | None,
    now: datetime,
) -> None:
    """The audit rows (one for each of the account's clinics) and the failure's count."""
    if result.outcome is Outcome.FAILED:
        staff_sessions.record_failure(s, keys, now=now)
    elif result.outcome is Outcome.OK:
        staff_sessions.forget_failures(s, keys[0])
    ok = result.outcome is Outcome.OK
    clinics = account.clinic_ids if account and account.clinic_ids else (NO_CLINIC,)
    for clinic_id in clinics:
        audit.record(
            s.connection(),
            clinic_id=clinic_id,
            actor=email[:ACTOR_LENGTH],
            action=SIGN_IN if ok else SIGN_IN_FAILED,
            patient_id=None,
            detail=None if ok else result.outcome.value,
            now=now,
        )
