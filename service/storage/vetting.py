"""A claim's vetting, in the claim's transaction: what changed while the messages waited."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from service.storage import claims, reasons
from service.storage.claims import Claim
from service.storage.models import Status
from service.storage.moves import Move, move_many


def vet(conn: sa.Connection, batch: claims.ClaimBatch, *, now: datetime) -> list[Claim]:
    """Follow what changed while the messages waited, and mark the opt-out footer.

    A cancelled treatment, withdrawn consent or a STOP cancels the message (a STOP just before
    the send wins); a new phone number is used; the footer goes on the first message a clinic
    sends a number, and on no other."""
    dropped: list[Move] = []
    moved_phone: list[tuple[str, str]] = []
    keep: list[Claim] = []
    reached: set[tuple[str, str]] = set()
    for claim in batch.claims:  # soonest first
        state = batch.standing[claim.id]
        if (reason := _cancel_reason(state)) is not None:
            dropped.append(
                Move(
                    claim.id,
                    Status.CANCELLED,
                    reason,
                    values={"reason": reason, "lease_until": None},
                )
            )
            continue
        if state.phone != claim.phone:
            moved_phone.append((claim.id, state.phone))
            claim.phone = state.phone
        pair = (claim.clinic_id, claim.phone)
        claim.footer = not state.reached and pair not in reached
        reached.add(pair)
        keep.append(claim)
    move_many(conn, dropped, now=now)
    claims.set_phone(conn, moved_phone, now=now)
    claims.mark_footer(conn, [c.id for c in keep if c.footer])
    return keep


def _cancel_reason(state: claims.Standing) -> str | None:
    if state.cancelled:
        return reasons.TREATMENT_CANCELLED
    if not state.consents:
        return reasons.CONSENT_WITHDRAWN
    return reasons.OPTED_OUT if state.stopped else None
