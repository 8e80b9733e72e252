"""What `[retention]` deletes, a batch per call (contract §19): plain functions of a sync Session,
each run whole by `Transactions.write` as one short transaction (service.storage.pruning).

Three shapes, each a row of `RULES`, in the order a pass runs them:
- `Aged`: rows that nothing refers to, deleted once older than their period (events,
  patients' texts, escalations, the audit trail);
- `Messages`: finished messages (no status can follow), with their history, their links to
  appointments and the status callbacks kept for them; never a scheduled or sending one, nor
  one whose escalation is still kept (it goes in a later pass, after the escalation);
- `Orphans`: appointments, treatments and patients, once nothing refers to them any more and
  they have not changed for the period: a patient's name and number do not outlive the last
  message, treatment or appointment that needed them.

Opt-outs are never pruned: a STOP holds until START, however old. Each batch selects its rows
by an index on their age (migration 0010) and locks them (`SKIP LOCKED` on PostgreSQL: two
replicas pruning at once take different rows; SQLite has one writer).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, cast

import sqlalchemy as sa
from sqlmodel import Session

from service.storage.appointments import Appointment, AppointmentMessage
from service.storage.audit import AUDIT
from service.storage.conversation_tables import ESCALATION, EscalationState
from service.storage.media_tables import MEDIA
from service.storage.models import Inbound, Status
from service.storage.tables import EVENT, HISTORY, MESSAGE, PATIENT, PROVIDER_STATUS, TREATMENT

INBOUND = cast(sa.Table, Inbound.__table__)  # type: ignore[attr-defined]
APPOINTMENT = cast(sa.Table, Appointment.__table__)  # type: ignore[attr-defined]
LINK = cast(sa.Table, AppointmentMessage.__table__)  # type: ignore[attr-defined]
M = MESSAGE.c
BEFORE: sa.BindParameter[datetime] = sa.bindparam("before")
LIMIT: sa.BindParameter[int] = sa.bindparam("limit")

# A message in one of these has had its last word (a `sent` one never heard back, after a
# whole period, never will).
FINISHED = tuple(s.value for s in Status if s not in (Status.SCHEDULED, Status.SENDING))


class Rule(Protocol):
    """One kind of row `[retention]` deletes: its table's name, its period's key, a batch."""

    @property
    def name(self) -> str: ...

    @property
    def period(self) -> str: ...

    def prune(self, s: Session, *, before: datetime, limit: int) -> int:
        """Delete up to `limit` rows whose period ended `before`; how many."""
        ...


def _ids(s: Session, query: sa.Select[tuple[object]], before: datetime, limit: int) -> list[object]:
    return list(s.connection().execute(query, {"before": before, "limit": limit}).scalars())


def _delete(s: Session, table: sa.Table, ids: Sequence[object]) -> int:
    [key] = table.primary_key.columns
    return int(s.connection().execute(sa.delete(table).where(key.in_(ids))).rowcount)


@dataclass(frozen=True)
class Aged:
    """Rows deleted once `age` is older than the period: nothing refers to them."""

    table: sa.Table
    age: sa.ColumnElement[datetime]
    period: str
    where: tuple[sa.ColumnElement[bool], ...] = ()  # leads the age's index where it needs it

    @property
    def name(self) -> str:
        """The table's name (the metric's label)."""
        return self.table.name

    def prune(self, s: Session, *, before: datetime, limit: int) -> int:
        """Delete up to `limit` rows older than `before`; how many."""
        [key] = self.table.primary_key.columns
        query = sa.select(key).where(*self.where, self.age < BEFORE).limit(LIMIT)
        ids = _ids(s, query.with_for_update(skip_locked=True), before, limit)
        return _delete(s, self.table, ids) if ids else 0


@dataclass(frozen=True)
class Orphans:
    """Rows deleted once nothing in `references` names them and `ages` are older."""

    table: sa.Table
    ages: tuple[sa.ColumnElement[datetime], ...]
    references: tuple[sa.Column[int], ...]  # each a foreign key to this table's id
    period: str

    @property
    def name(self) -> str:
        """The table's name (the metric's label)."""
        return self.table.name

    def prune(self, s: Session, *, before: datetime, limit: int) -> int:
        """Delete up to `limit` unreferenced rows unchanged since `before`; how many."""
        [key] = self.table.primary_key.columns
        unused = [~sa.exists().where(ref == key) for ref in self.references]
        old = [age < BEFORE for age in self.ages]
        query = sa.select(key).where(*old, *unused).limit(LIMIT)
        ids = _ids(s, query.with_for_update(skip_locked=True, of=self.table), before, limit)
        return _delete(s, self.table, ids) if ids else 0


# Found by (status, due_at), decided by updated_at too: planned and last changed before.
_FINISHED_MESSAGES = (
    sa.select(M.id, M.provider_id)
    .where(M.status.in_(FINISHED), M.due_at < BEFORE, M.updated_at < BEFORE)
    .where(~sa.exists().where(ESCALATION.c.message_id == M.id))
    .limit(LIMIT)
    .with_for_update(skip_locked=True, of=MESSAGE)
)


@dataclass(frozen=True)
class Messages:
    """Finished messages with their history, appointment links and status callbacks."""

    name: str = MESSAGE.name
    period: str = "messages"

    def prune(self, s: Session, *, before: datetime, limit: int) -> int:
        """Delete up to `limit` messages finished before `before`, and what hangs on them."""
        conn = s.connection()
        rows = conn.execute(_FINISHED_MESSAGES, {"before": before, "limit": limit}).all()
        if not rows:
            return 0
        ids = [row.id for row in rows]
        sids = [row.provider_id for row in rows if row.provider_id]
        conn.execute(sa.delete(HISTORY).where(HISTORY.c.message_id.in_(ids)))
        conn.execute(sa.delete(LINK).where(LINK.c.message_id.in_(ids)))
        if sids:
            conn.execute(sa.delete(PROVIDER_STATUS).where(PROVIDER_STATUS.c.provider_id.in_(sids)))
        return _delete(s, MESSAGE, ids)


E = ESCALATION.c
RULES: tuple[Rule, ...] = (
    Aged(EVENT, EVENT.c.received_at, "events"),
    Aged(INBOUND, INBOUND.c.received_at, "replies"),
    Aged(MEDIA, MEDIA.c.received_at, "media"),  # photos: their bytes go with the row
    Aged(ESCALATION, E.opened_at, "replies", (E.state.in_([s.value for s in EscalationState]),)),
    Aged(AUDIT, AUDIT.c.at, "audit"),
    Messages(),
    Orphans(
        APPOINTMENT,
        (APPOINTMENT.c.updated_at, APPOINTMENT.c.starts_at),
        (LINK.c.appointment_id,),
        "messages",
    ),
    Orphans(
        TREATMENT,
        (TREATMENT.c.created_at,),
        (M.treatment_id, APPOINTMENT.c.treatment_id),
        "messages",
    ),
    Orphans(
        PATIENT,
        (PATIENT.c.updated_at,),
        (TREATMENT.c.patient_id, M.patient_id, APPOINTMENT.c.patient_id),
        "messages",
    ),
)
"""Escalations before messages (a check-in is kept while its escalation is), messages before
what they refer to, appointments and treatments before patients: one pass frees them all."""
