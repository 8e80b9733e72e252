"""A claim's vetting, in the claim's transaction: what changed while the messages waited."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from service.storage import claims, reasons
from service.storage.claims import Claim
from service.storage.models import ALERT, STAFF, Status
from service.storage.moves import Move, move_many


def vet(conn: sa.Connection, batch: claims.ClaimBatch, *, now: datetime) -> list[Claim]:
    """Follow what changed while the messages waited, and mark the opt-out footer.

    A cancelled treatment, withdrawn consent, a STOP or a `STOP <WORD>` of its kind cancels the
    message (a STOP just before the send wins); a new phone number is used; the footer goes on
    the first message a clinic sends a number, and on no other. An alert to an on-call number
    is none of the patient's: it goes as it is, without a footer. A staff text is the patient's
    (consent, STOP, new number, footer) but no treatment's: a cancelled treatment it was filed
    under does not stop it, and only a `STOP <WORD>` whose kinds name `staff` would."""
    dropped: list[Move] = []
    moved_phone: list[tuple[str, str]] = []
    keep: list[Claim] = []
    reached: set[tuple[str, str]] = set()
    for claim in batch.claims:  # soonest first
        if claim.kind == ALERT:  # to the clinic's on-call number: the patient's state is not its
            claim.footer = False
            keep.append(claim)
            continue
        state = batch.standing[claim.id]
        if (reason := _cancel_reason(state, staff=claim.kind == STAFF)) is not None:
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


def _cancel_reason(state: claims.Standing, *, staff: bool) -> str | None:
    if state.cancelled and not staff:
        return reasons.TREATMENT_CANCELLED
    if not state.consents:
        return reasons.CONSENT_WITHDRAWN
    if state.stopped:
        return reasons.OPTED_OUT
    return None if state.stopped_word is None else reasons.opted_out_of(state.stopped_word)
