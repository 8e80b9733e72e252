"""The claim protocol's queries, in batches (design invariant 3).

A claim is one conditional UPDATE … RETURNING over the due rows: on PostgreSQL the rows are
picked with FOR UPDATE SKIP LOCKED, so replicas claiming at once split them; on SQLite the
write lock taken at BEGIN makes the claimer the only writer. These run as Core statements on
the session's connection: a batch of claims costs a handful of round trips, not a few per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import sqlalchemy as sa

from service.storage import reasons
from service.storage.conversation_tables import KIND_OPT_OUT
from service.storage.models import ALERT, STAFF, Status
from service.storage.moves import add_history
from service.storage.tables import MESSAGE, OPT_OUT, PATIENT, TREATMENT

SENT_STATUSES = (Status.SENT, Status.DELIVERED, Status.UNDELIVERED)
M = MESSAGE.c


@dataclass(slots=True)
class Claim:
    """A claimed message: what sending it needs."""

    id: str
    clinic_id: str
    phone: str
    body: str
    send_at: datetime
    expires_at: datetime
    attempts: int
    claimed_at: datetime | None
    footer: bool
    kind: str
    locale: str  # the footer's: the patient's (contract §12), else the text's
    patient_id: int
    due_at: datetime
    # The messages going out inside this one, as one text, in plan order (docs/merging.md).
    parts: list[Claim] = field(default_factory=list)

    @property
    def order(self) -> tuple[datetime, datetime, str]:
        """Plan order: due time, then planned time, then id."""
        return (self.due_at, self.send_at, self.id)


def _claimed(column: sa.Column[Any]) -> sa.ColumnElement[Any]:
    """`column` of the row being claimed, named in full inside a subquery of the claim's
    RETURNING: SQLAlchemy names RETURNING's columns bare on SQLite, its subqueries' too, and a
    bare name there is the subquery's own table's."""
    return sa.literal_column(f"{MESSAGE.name}.{column.name}", type_=column.type)


# The opt-out footer speaks the patient's language even when the step's text exists only in
# the clinic's: the patient's locale, else the one the text was rendered in.
_FOOTER_LOCALE = sa.func.coalesce(
    sa.select(PATIENT.c.locale).where(PATIENT.c.id == _claimed(M.patient_id)).scalar_subquery(),
    _claimed(M.locale),
).label("footer_locale")

CLAIM_COLUMNS = (
    M.id,
    M.clinic_id,
    M.phone,
    M.body,
    M.send_at,
    M.expires_at,
    M.attempts,
    M.claimed_at,
    M.footer,
    M.kind,
    _FOOTER_LOCALE,
    M.patient_id,
    M.due_at,
)


class Standing(NamedTuple):
    """What may have changed about a claimed message's patient while it waited."""

    cancelled: bool  # its treatment was cancelled
    consents: bool  # the patient consents to SMS
    phone: str  # the patient's phone now
    stopped: bool  # that phone said STOP to the clinic
    reached: bool  # another message of the clinic's went to that phone (or is going, footed)
    stopped_word: str | None  # the `STOP <WORD>` that phone said to the clinic for this kind


def _at(name: str) -> sa.BindParameter[datetime]:
    return sa.bindparam(name, type_=M.due_at.type)


def due_first(
    key: sa.Column[Any], due_at: sa.Column[Any], waiting: sa.ColumnElement[bool]
) -> sa.Select[Any]:
    """The claim's pick, for a statement built once: the `key` of `waiting` rows due by the
    bound `now`, soonest first, at most the bound `limit`; on PostgreSQL locked, skipping rows
    a rival claimer holds (messages here, notifications in `outbox_claims`)."""
    return (
        sa.select(key)
        .where(waiting, due_at <= sa.bindparam("now", type_=due_at.type))
        .order_by(due_at)
        .limit(sa.bindparam("limit", type_=sa.Integer))
        .with_for_update(skip_locked=True)
    )


def _unless_expired(claimed: Any, expired: Any) -> sa.Case[Any]:
    """A column's new value: `claimed` on a row claimed to be sent, `expired` on a row that is
    past its expiry."""
    return sa.case((M.expires_at <= _at("now"), expired), else_=claimed)


def _standing_columns() -> tuple[sa.ColumnElement[Any], ...]:
    """What may have changed about a message's patient while it waited (`Standing`), as
    subqueries on the claimed row, so the claim itself answers them."""
    other = MESSAGE.alias("other")
    phone = (
        sa.select(PATIENT.c.phone).where(PATIENT.c.id == _claimed(M.patient_id)).scalar_subquery()
    )
    clinic = _claimed(M.clinic_id)
    # Reached: another message to that number went out, or is going out with the footer.
    # Not "is being sent" alone: a message claimed in this same statement is `sending`
    # already on SQLite and still `scheduled` on PostgreSQL, and must count on neither.
    # Looked up by (clinic_id, phone). The status is compared as `status || ''`, which no index
    # serves: PostgreSQL, with statistics from before the latest sends (autovacuum re-analyzes
    # a big table only after 10 % of it changed), took (status, due_at) for it and walked every
    # message sent since for each row claimed (docs/benchmarks.md).
    status = other.c.status.concat("")
    reached = sa.exists().where(
        other.c.clinic_id == clinic,
        other.c.phone == phone,
        other.c.id != _claimed(M.id),
        sa.or_(status.in_(SENT_STATUSES), sa.and_(status == Status.SENDING, other.c.footer)),
    )
    return (
        sa.select(TREATMENT.c.cancelled_at.is_not(None))
        .where(TREATMENT.c.id == _claimed(M.treatment_id))
        .scalar_subquery(),
        sa.select(PATIENT.c.sms_consent)
        .where(PATIENT.c.id == _claimed(M.patient_id))
        .scalar_subquery(),
        phone,
        sa.exists().where(OPT_OUT.c.clinic_id == clinic, OPT_OUT.c.phone == phone),
        reached,
        sa.select(KIND_OPT_OUT.c.word)
        .where(
            KIND_OPT_OUT.c.clinic_id == clinic,
            KIND_OPT_OUT.c.phone == phone,
            KIND_OPT_OUT.c.kind == _claimed(M.kind),
        )
        .scalar_subquery(),
    )


# Built once: a statement object carries its compiled form's cache key, so running it again
# costs binding its parameters, not building and hashing the statement.
_DUE = due_first(M.id, M.due_at, M.status == Status.SCHEDULED)


# One statement claims the due rows and expires those past their expiry (soonest first, so
# those come first), and answers what vetting needs. The subquery picks (and on PostgreSQL
# locks) rows still scheduled; checking the status again outside it would only lead SQLite to
# walk every scheduled row by that index.
def _claim(due: sa.Select[Any], *more: sa.ColumnElement[Any]) -> sa.Update:
    return (
        sa.update(MESSAGE)
        .where(M.id.in_(due.scalar_subquery()))
        .values(
            status=_unless_expired(
                sa.literal(Status.SENDING.value), sa.literal(Status.EXPIRED.value)
            ),
            reason=_unless_expired(M.reason, sa.literal(reasons.EXPIRED_BEFORE_SENT)),
            claimed_by=_unless_expired(sa.bindparam("instance"), M.claimed_by),
            claimed_at=_unless_expired(_at("now"), M.claimed_at),
            lease_until=_unless_expired(_at("lease_until"), M.lease_until),
            attempts=_unless_expired(M.attempts + 1, M.attempts),
            updated_at=_at("now"),
        )
        .returning(*CLAIM_COLUMNS, M.status, *_standing_columns(), *more)
    )


_CLAIM = _claim(_DUE)
# Texts a person waits for (an on-call alert, a staff member's text): never passed over.
WAITED_FOR = (ALERT, STAFF)
# The same, passing over the due rows of some clinics (`skip`) but their `WAITED_FOR` texts:
# clinics whose sender's pace holds as many claims as may leave within a lease
# (docs/pacing.md). A statement of its own, so an unpaced claim is the same statement as ever.
_SKIPPING = _DUE.where(
    sa.or_(M.clinic_id.not_in(sa.bindparam("skip", expanding=True)), M.kind.in_(WAITED_FOR))
)
_CLAIM_SKIPPING = _claim(_SKIPPING)


def _mergeable() -> sa.Exists:
    """Whether the claimed row's patient has another message at its clinic that may merge
    into it: scheduled, due by the bound `now + window` (its own is due by now), not an alert
    or a staff text. On PostgreSQL a row claimed in the same statement still looks scheduled:
    that only costs the lookup that then finds it taken."""
    other = MESSAGE.alias("mergeable")
    return sa.exists().where(
        other.c.patient_id == _claimed(M.patient_id),
        other.c.clinic_id == _claimed(M.clinic_id),
        other.c.id != _claimed(M.id),
        other.c.status.concat("") == Status.SCHEDULED,  # by patient, not by (status, due_at)
        other.c.due_at <= _at("bound"),
        other.c.kind.not_in((ALERT, STAFF)),
    )


# With a merge window: the claim also answers whether anything may merge into each row, so the
# statement taking the parts runs only for a batch where something may (most have nothing).
_CLAIM_MERGING = _claim(_DUE, _mergeable().label("mergeable"))
_CLAIM_MERGING_SKIPPING = _claim(_SKIPPING, _mergeable().label("mergeable"))
# Merging (docs/merging.md): the same patients' other scheduled messages due by the bound, taken
# in one more statement per batch, locked and skipping rows a rival claimer holds, as the claim
# is. Claimed `sending` (or expired); who claimed them is written once they are merged.
# Looked up by patient: the status compared as `status || ''`, which no index serves, or the
# planners walk (status, due_at) through every message due by the bound (a backlog's all).
_PARTS = (
    sa.select(M.id)
    .where(
        M.status.concat("") == Status.SCHEDULED,
        M.patient_id.in_(sa.bindparam("patients", expanding=True)),
        M.due_at <= _at("bound"),
        M.kind.not_in((ALERT, STAFF)),
    )
    .with_for_update(skip_locked=True)
)
_CLAIM_PARTS = (
    sa.update(MESSAGE)
    .where(M.id.in_(_PARTS.scalar_subquery()))
    .values(
        status=_unless_expired(sa.literal(Status.SENDING.value), sa.literal(Status.EXPIRED.value)),
        reason=_unless_expired(M.reason, sa.literal(reasons.EXPIRED_BEFORE_SENT)),
        lease_until=_unless_expired(_at("lease_until"), M.lease_until),
        updated_at=_at("now"),
    )
    .returning(*CLAIM_COLUMNS, M.status, *_standing_columns())
)
_TAKE_OVER = (
    sa.update(MESSAGE)
    .where(
        M.id == sa.bindparam("message_id"), M.status == Status.SENDING, M.lease_until < _at("now")
    )
    .values(
        claimed_by=sa.bindparam("instance"), lease_until=_at("lease_until"), updated_at=_at("now")
    )
    .returning(*CLAIM_COLUMNS)
)

_TAKE_OVER_PARTS = (
    sa.update(MESSAGE)
    .where(M.merged_into == sa.bindparam("message_id"), M.status == Status.SENDING)
    .values(
        claimed_by=sa.bindparam("instance"), lease_until=_at("lease_until"), updated_at=_at("now")
    )
    .returning(*CLAIM_COLUMNS)
)

_EXTEND = (
    sa.update(MESSAGE)
    .where(
        M.id == sa.bindparam("message_id"),
        M.status == Status.SENDING,
        M.claimed_by == sa.bindparam("instance"),
    )
    .values(lease_until=_at("lease_until"), updated_at=_at("now"))
)


@dataclass(slots=True)
class ClaimBatch:
    """What one claim took: messages to send (soonest first) with their standing, and the
    ids of messages it found past their expiry."""

    claims: list[Claim]
    standing: dict[str, Standing]
    expired: list[str]
    taken: int = 0  # how many due rows the claim took, whatever became of them
    window: timedelta = timedelta(0)  # sms.merge_window
    # Messages not due yet, taken to merge into a due one (docs/merging.md): not claimed by
    # anyone until they are merged, and released when they are not.
    ahead: set[str] = field(default_factory=set)


def claim_due(
    conn: sa.Connection,
    *,
    now: datetime,
    instance: str,
    lease: timedelta,
    limit: int,
    window: timedelta = timedelta(0),
    skip: Sequence[str] = (),
) -> ClaimBatch:
    """Claim up to `limit` due scheduled messages for `instance`, soonest first, none of the
    clinics in `skip` but their `WAITED_FOR` texts; expire the ones among them past their
    expiry. With a merge `window`, also take the same patients' messages due within it of
    their earliest claimed here (`merging.merge` groups them)."""
    params: dict[str, Any] = {
        "now": now,
        "limit": limit,
        "instance": instance,
        "lease_until": now + lease,
    }
    if skip:
        params["skip"] = sorted(skip)
    batch = ClaimBatch([], {}, [], window=window)
    mergeable: set[str] = set()
    if window:
        statement = _CLAIM_MERGING_SKIPPING if skip else _CLAIM_MERGING
        rows = conn.execute(statement, {**params, "bound": now + window}).all()
        mergeable = {row.id for row in rows if row.mergeable and row.status != Status.EXPIRED}
    else:
        rows = conn.execute(_CLAIM_SKIPPING if skip else _CLAIM, params).all()
    _take(batch, rows)
    batch.taken = len(batch.claims) + len(batch.expired)
    history = [
        (c.id, Status.SENDING, f"claimed by {instance}, attempt {c.attempts}", None)
        for c in batch.claims
    ]
    if window and mergeable:
        _claim_ahead(conn, batch, params, mergeable)
    batch.claims.sort(key=lambda c: c.order)
    expired = reasons.EXPIRED_BEFORE_SENT
    add_history(
        conn, [(i, Status.EXPIRED, expired, None) for i in batch.expired] + history, now=now
    )
    return batch


def _take(batch: ClaimBatch, rows: Sequence[sa.Row[Any]]) -> list[Claim]:
    """Add the claim's rows to `batch`; the claims (not the expired)."""
    taken = []
    for row in rows:
        claim = Claim(*row[: len(CLAIM_COLUMNS)])
        if row.status == Status.EXPIRED:
            batch.expired.append(claim.id)
            continue
        taken.append(claim)
        start = len(CLAIM_COLUMNS) + 1
        cancelled, consents, phone, stopped, reached, word = row[start : start + 6]
        batch.standing[claim.id] = Standing(
            bool(cancelled), bool(consents), phone, bool(stopped), bool(reached), word
        )
    batch.claims.extend(taken)
    return taken


def _claim_ahead(
    conn: sa.Connection, batch: ClaimBatch, params: dict[str, Any], mergeable: set[str]
) -> None:
    """Take the claimed patients' messages due within the window of their earliest here (of
    the patients with any such message, `mergeable`); those beyond it (another patient's bound
    let them in, or another clinic's) go back at once."""
    wanted = {(c.clinic_id, c.patient_id) for c in batch.claims if c.id in mergeable}
    earliest: dict[tuple[str, int], datetime] = {}
    for c in batch.claims:
        if c.kind not in (ALERT, STAFF) and (c.clinic_id, c.patient_id) in wanted:
            key = (c.clinic_id, c.patient_id)
            earliest[key] = min(earliest.get(key, c.due_at), c.due_at)
    if not earliest:
        return
    found = conn.execute(
        _CLAIM_PARTS,
        {
            **params,
            "bound": max(earliest.values()) + batch.window,
            "patients": sorted({p for _, p in earliest}),
        },
    ).all()
    back = []
    for claim in _take(batch, found):
        first = earliest.get((claim.clinic_id, claim.patient_id))
        if first is None or claim.due_at > first + batch.window:
            back.append(claim.id)
        else:
            batch.ahead.add(claim.id)
    if back:
        release(conn, back, now=params["now"])
        batch.claims = [c for c in batch.claims if c.id not in back]


_RELEASE = (
    sa.update(MESSAGE)
    .where(M.id.in_(sa.bindparam("ids", expanding=True)), M.status == Status.SENDING)
    .values(status=Status.SCHEDULED, lease_until=None, footer=False, updated_at=_at("now"))
)


def release(conn: sa.Connection, ids: Sequence[str], *, now: datetime) -> None:
    """Put back messages taken to merge and not merged: scheduled as they were (docs/merging.md)."""
    conn.execute(_RELEASE, {"ids": list(ids), "now": now})


_MERGED = (
    sa.update(MESSAGE)
    .where(M.id == sa.bindparam("m_id"))
    .values(
        merged_into=sa.bindparam("m_lead"),
        claimed_by=sa.bindparam("m_instance"),
        claimed_at=_at("m_now"),
        attempts=M.attempts + sa.bindparam("m_bump", type_=sa.Integer),
    )
)


def mark_merged(
    conn: sa.Connection,
    leads: Sequence[Claim],
    *,
    ahead: set[str],
    instance: str,
    now: datetime,
) -> None:
    """Record the parts of these merged texts (`Claim.parts`): whose they are, and, for those
    taken ahead of their time, who claimed them."""
    rows, history = [], []
    for lead in leads:
        for part in lead.parts:
            early = part.id in ahead
            if early:
                part.attempts += 1
            rows.append(
                {
                    "m_id": part.id,
                    "m_lead": lead.id,
                    "m_instance": instance,
                    "m_now": now,
                    "m_bump": int(early),
                }
            )
            claimed = f"claimed by {instance}, attempt {part.attempts}, " if early else ""
            history.append((part.id, Status.SENDING, f"{claimed}merged into {lead.id}", None))
    if rows:
        conn.execute(_MERGED, rows)
        add_history(conn, history, now=now)


def take_over(
    conn: sa.Connection, message_id: str, *, now: datetime, instance: str, lease: timedelta
) -> Claim | None:
    """Take over a stale claim so that only one instance reconciles it, with the messages
    merged into it (docs/merging.md)."""
    params = {
        "message_id": message_id,
        "now": now,
        "instance": instance,
        "lease_until": now + lease,
    }
    row = conn.execute(_TAKE_OVER, params).first()
    if row is None:
        return None
    claim = Claim(*row)
    # A merged text's parts, still `sending` with it: reconciled and recorded with it.
    parts = [Claim(*part) for part in conn.execute(_TAKE_OVER_PARTS, params).all()]
    claim.parts = sorted(parts, key=lambda c: c.order)
    return claim


def extend(
    conn: sa.Connection, message_id: str, *, now: datetime, instance: str, lease: timedelta
) -> bool:
    """Renew `instance`'s claim on a message for `lease` from `now`; False when it is no longer
    that instance's (another took it over)."""
    params = {
        "message_id": message_id,
        "now": now,
        "instance": instance,
        "lease_until": now + lease,
    }
    return bool(conn.execute(_EXTEND, params).rowcount)


_FOOTER = (
    sa.update(MESSAGE).where(M.id.in_(sa.bindparam("ids", expanding=True))).values(footer=True)
)
_NEW_PHONE = (
    sa.update(MESSAGE)
    .where(M.id == sa.bindparam("m_id"))
    .values(phone=sa.bindparam("m_phone"), updated_at=_at("m_now"))
)


def mark_footer(conn: sa.Connection, ids: Sequence[str]) -> None:
    """Record that these messages carry the opt-out footer (it is part of what was sent)."""
    if ids:
        conn.execute(_FOOTER, {"ids": list(ids)})


def set_phone(conn: sa.Connection, changes: Sequence[tuple[str, str]], *, now: datetime) -> None:
    """Send these claimed messages to the patient's new phone: (message id, phone)."""
    if changes:
        conn.execute(_NEW_PHONE, [{"m_id": i, "m_phone": p, "m_now": now} for i, p in changes])
        add_history(
            conn, [(i, Status.SENDING, "patient's new phone", None) for i, _ in changes], now=now
        )
