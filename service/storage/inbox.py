"""The console inbox's queries (contract §16): what needs a person, from three tables.

- an escalation while `open` (acknowledging it, or marking it done, which acknowledges it,
  closes it);
- a reply (`inbound`) whose level needs a person — `watch`, `free_text`, or `outside` any
  check-in's window — until marked done;
- a message `failed` or `undelivered`, until marked done.

`clinics=None` means every clinic (the metrics); else only the clinics named. Each source is
served by an index: escalations by (clinic_id, state, opened_at, id), replies by (clinic_id,
level, received_at), messages by (status, due_at); the marks by their primary key.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from service.storage.conversation_tables import ESCALATION, EscalationState
from service.storage.inbound_rows import INBOUND, OUTSIDE, PHOTO
from service.storage.inbox_tables import INBOX_DONE, InboxDone, ItemKind
from service.storage.models import Status
from service.storage.tables import MESSAGE, PATIENT

E, IN, M, P, D = ESCALATION.c, INBOUND.c, MESSAGE.c, PATIENT.c, INBOX_DONE.c
REPLY_LEVELS = ("watch", "free_text", OUTSIDE, PHOTO)
FAILED = (Status.FAILED.value, Status.UNDELIVERED.value)
Clinics = Collection[str] | None


@dataclass(frozen=True)
class ItemRow:
    """One inbox item as stored: its source, row, clinic and time, and what it shows."""

    kind: str
    ref: str
    clinic_id: str
    at: datetime
    first_name: str | None
    phone: str | None
    patient_id: str | None  # the clinic's id
    level: str | None = None
    text: str | None = None
    code: str | None = None
    step: str | None = None
    message_kind: str | None = None
    status: str | None = None
    error_code: int | None = None


def _not_done(kind: ItemKind, ref: Any) -> sa.ColumnElement[bool]:
    return ~sa.exists().where(D.kind == kind.value, D.ref == ref)


def _in(column: Any, clinics: Clinics) -> list[sa.ColumnElement[bool]]:
    return [] if clinics is None else [column.in_(list(clinics))]


def _patient() -> list[Any]:
    return [P.first_name, P.external_id.label("patient_id")]


def _escalations(clinics: Clinics) -> sa.Select[Any]:
    where = [E.state == EscalationState.OPEN.value, *_in(E.clinic_id, clinics)]
    return (
        sa.select(
            sa.literal(ItemKind.ESCALATION.value).label("kind"),
            E.id.label("ref"),
            E.clinic_id,
            E.opened_at.label("at"),
            *_patient(),
            P.phone,
            E.level,
            E.reply.label("text"),
            E.code,
        )
        .join_from(ESCALATION, MESSAGE, M.id == E.message_id)
        .join(PATIENT, P.id == M.patient_id)
        .where(*where)
    )


def _replies(clinics: Clinics) -> sa.Select[Any]:
    ref = sa.cast(IN.id, sa.String)
    where = [IN.level.in_(REPLY_LEVELS), *_in(IN.clinic_id, clinics)]
    return (
        sa.select(
            sa.literal(ItemKind.REPLY.value).label("kind"),
            ref.label("ref"),
            IN.clinic_id,
            IN.received_at.label("at"),
            *_patient(),
            IN.phone,
            IN.level,
            IN.body.label("text"),
        )
        .join_from(INBOUND, PATIENT, P.id == IN.patient_id, isouter=True)
        .where(*where, IN.clinic_id.is_not(None), _not_done(ItemKind.REPLY, ref))
    )


def _failed(clinics: Clinics) -> sa.Select[Any]:
    where = [M.status.in_(FAILED), *_in(M.clinic_id, clinics)]
    return (
        sa.select(
            sa.literal(ItemKind.MESSAGE.value).label("kind"),
            M.id.label("ref"),
            M.clinic_id,
            M.updated_at.label("at"),
            *_patient(),
            M.phone,
            M.step,
            M.kind.label("message_kind"),
            M.status,
            M.error_code,
        )
        .join_from(MESSAGE, PATIENT, P.id == M.patient_id)
        .where(*where, _not_done(ItemKind.MESSAGE, M.id))
    )


SOURCES = {ItemKind.ESCALATION: _escalations, ItemKind.REPLY: _replies, ItemKind.MESSAGE: _failed}
_REF = {
    ItemKind.ESCALATION: E.id,
    ItemKind.REPLY: sa.cast(IN.id, sa.String),
    ItemKind.MESSAGE: M.id,
}
_AT = {
    ItemKind.ESCALATION: E.opened_at,
    ItemKind.REPLY: IN.received_at,
    ItemKind.MESSAGE: M.updated_at,
}


def items(conn: sa.Connection, clinics: Clinics, *, limit: int) -> list[ItemRow]:
    """The newest `limit` open items of the clinics, newest first (each source's newest
    `limit`, merged)."""
    found: list[ItemRow] = []
    for kind, source in SOURCES.items():
        query = source(clinics).order_by(_AT[kind].desc()).limit(limit)
        found += [ItemRow(**row._mapping) for row in conn.execute(query)]
    return sorted(found, key=lambda i: (i.at, i.ref), reverse=True)[:limit]


def item(conn: sa.Connection, kind: ItemKind, ref: str) -> ItemRow | None:
    """The item `kind` `ref` while it is open (of any clinic: the caller checks whose)."""
    row = conn.execute(SOURCES[kind](None).where(_REF[kind] == ref)).first()
    return None if row is None else ItemRow(**row._mapping)


@dataclass(frozen=True)
class Stats:
    """How many items are open and when the newest and the oldest of them arrived."""

    count: int
    newest: datetime | None
    oldest: datetime | None


def stats(conn: sa.Connection, clinics: Clinics) -> dict[ItemKind, Stats]:
    """Each source's open items: count, newest and oldest time (one indexed query each)."""
    found = {}
    for kind, source in SOURCES.items():
        # Without the patient's join: the planner then walks the source's own index.
        where = source(clinics).whereclause
        assert where is not None, "every source filters"
        at = _AT[kind]
        query = sa.select(sa.func.count(), sa.func.max(at), sa.func.min(at)).where(where)
        found[kind] = Stats(*conn.execute(query).one())
    return found


def oldest_escalations(conn: sa.Connection) -> dict[str, datetime]:
    """Each clinic's oldest open escalation's `opened_at` (the clinics with one)."""
    query = (
        sa.select(E.clinic_id, sa.func.min(E.opened_at))
        .where(E.state == EscalationState.OPEN.value)
        .group_by(E.clinic_id)
    )
    return {clinic_id: at for clinic_id, at in conn.execute(query)}


def mark_done(
    conn: sa.Connection, kind: ItemKind, ref: str, *, clinic_id: str, by: str, now: datetime
) -> None:
    """Mark an open item done (the caller found it open, in this transaction); two staff
    marking it at once keep the first mark."""
    values = {"kind": kind.value, "ref": ref, "clinic_id": clinic_id}
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    insert = dialect.insert(INBOX_DONE).on_conflict_do_nothing(index_elements=["kind", "ref"])
    conn.execute(insert, {**values, "done_at": now, "done_by": by[:255]})


def done_mark(s: Session, kind: ItemKind, ref: str) -> InboxDone | None:
    """The mark of the item `kind:ref` done, if it was marked."""
    return s.get(InboxDone, (kind.value, ref))
