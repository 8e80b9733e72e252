"""A claim's vetting, in the claim's transaction: what changed while the messages waited."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from service.planning import day
from service.storage import claims, reasons
from service.storage.claims import Claim
from service.storage.models import ALERT, STAFF, Status
from service.storage.moves import Move, move_many


def vet(
    conn: sa.Connection, batch: claims.ClaimBatch, *, now: datetime, instance: str = ""
) -> list[Claim]:
    """Follow what changed while the messages waited, and mark the opt-out footer.

    A cancelled treatment, withdrawn consent, a STOP or a `STOP <WORD>` of its kind cancels the
    message (a STOP just before the send wins); a new phone number is used; the footer goes on
    the first message a clinic sends a number, and on no other. An alert to an on-call number
    is none of the patient's: it goes as it is, without a footer. A staff text is the patient's
    (consent, STOP, new number, footer) but no treatment's: a cancelled treatment it was filed
    under does not stop it, and only a `STOP <WORD>` whose kinds name `staff` would.

    With a merge window, what is left is merged (`merge`): each part vetted as a message."""
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
    if batch.window:
        return merge(conn, batch, keep, now=now, instance=instance)
    return keep


def merge(
    conn: sa.Connection,
    batch: claims.ClaimBatch,
    keep: list[Claim],
    *,
    now: datetime,
    instance: str,
) -> list[Claim]:
    """Group a patient's vetted messages at a clinic due within the window of the group's
    first (its lead) into one text: the lead, its `parts` in plan order (docs/merging.md).
    Alerts and staff texts go alone. A group whose first is not due yet (its due lead was
    cancelled) goes back to wait for its time."""
    by_patient: dict[tuple[str, int], list[Claim]] = {}
    for claim in sorted(keep, key=lambda c: c.order):
        by_patient.setdefault((claim.clinic_id, claim.patient_id), []).append(claim)
    out: list[Claim] = []
    back: list[str] = []
    for theirs in by_patient.values():
        by_id = {c.id: c for c in theirs}
        # The planner's own grouping (planning.day), by due time, so that dispatch merges
        # as the 202 answer and `preview` show it.
        dues = [day.Due(c.id, c.kind, c.due_at) for c in theirs]
        for group in day.merge_groups(dues, batch.window):
            lead, *parts = (by_id[d.id] for d in group)
            if lead.due_at > now:  # its due lead was cancelled: the rest wait for their time
                back.extend(c.id for c in (lead, *parts))
                continue
            lead.parts.extend(parts)
            out.append(lead)
    if back:
        claims.release(conn, back, now=now)
    claims.mark_merged(
        conn, [c for c in out if c.parts], ahead=batch.ahead, instance=instance, now=now
    )
    return sorted(out, key=lambda c: c.order)


def _cancel_reason(state: claims.Standing, *, staff: bool) -> str | None:
    if state.cancelled and not staff:
        return reasons.TREATMENT_CANCELLED
    if not state.consents:
        return reasons.CONSENT_WITHDRAWN
    if state.stopped:
        return reasons.OPTED_OUT
    return None if state.stopped_word is None else reasons.opted_out_of(state.stopped_word)
