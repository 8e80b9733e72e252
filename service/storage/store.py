"""The queries, each a plain function of a sync `Session` (run by `transactions`). A status
change is conditional and appended to history (`moves.add_history`): `move` for one message on
the ORM paths, `moves.move_many` for the batched ones."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlmodel import Session, SQLModel, col, select

from service.storage import numbers, reasons
from service.storage.models import (
    UNPLANNED,
    Event,
    Message,
    MessageHistory,
    OptOut,
    Patient,
    Status,
    Treatment,
)
from service.storage.moves import add_history

# Rows by their primary key, and new rows: the ORM's unit of work, for the layers above.


class OfTreatment(Protocol):
    """A row under a treatment and a patient (a message, an appointment)."""

    @property
    def treatment_id(self) -> int: ...

    @property
    def patient_id(self) -> int: ...


def add(s: Session, *rows: SQLModel) -> None:
    """New rows, inserted by this transaction (at its next flush, in this order)."""
    s.add_all(rows)


def save(s: Session, *rows: SQLModel) -> None:
    """Rows new or changed, written now (in this order): a new row's id is assigned."""
    s.add_all(rows)
    s.flush()


def refresh(s: Session, row: SQLModel) -> None:
    """Read the row again (after a statement that went around the session's copy)."""
    s.refresh(row)


def message(s: Session, message_id: str) -> Message | None:
    """The message with this id, if any."""
    return s.get(Message, message_id)


def patient(s: Session, patient_id: int) -> Patient | None:
    """The patient with this row id, if any."""
    return s.get(Patient, patient_id)


def treatment(s: Session, treatment_id: int) -> Treatment | None:
    """The treatment with this row id, if any."""
    return s.get(Treatment, treatment_id)


def treatment_and_patient(s: Session, row: OfTreatment) -> tuple[Treatment, Patient]:
    """The treatment and patient a message (or an appointment) is under."""
    treatment, patient = s.get(Treatment, row.treatment_id), s.get(Patient, row.patient_id)
    assert treatment is not None and patient is not None, "a message has both"
    return treatment, patient


def find_event(s: Session, clinic_id: str, webhook_id: str) -> Event | None:
    """The event stored under this clinic's webhook id, if any."""
    query = select(Event).where(Event.clinic_id == clinic_id, Event.webhook_id == webhook_id)
    return s.exec(query).first()


def find_treatment(s: Session, clinic_id: str, external_id: str) -> Treatment | None:
    """The clinic's treatment with this id, if any."""
    query = select(Treatment).where(
        Treatment.clinic_id == clinic_id, Treatment.external_id == external_id
    )
    return s.exec(query).first()


def find_patient(s: Session, clinic_id: str, external_id: str) -> Patient | None:
    """The clinic's patient with this id, if any."""
    query = select(Patient).where(
        Patient.clinic_id == clinic_id, Patient.external_id == external_id
    )
    return s.exec(query).first()


def patient_ids_with_phone(s: Session, clinic_id: str, phone: str) -> list[str]:
    """The external ids of the clinic's patients with this phone."""
    query = select(Patient.external_id).where(Patient.clinic_id == clinic_id)
    return list(s.exec(query.where(col(Patient.phone) == phone)).all())


def messages_of(s: Session, treatment_id: int) -> list[Message]:
    """A treatment's messages in plan order."""
    query = (
        select(Message)
        .where(Message.treatment_id == treatment_id)
        .order_by(col(Message.send_at), col(Message.step), col(Message.seq))
    )
    return list(s.exec(query).all())


def history_of(s: Session, message_ids: Sequence[str]) -> dict[str, list[MessageHistory]]:
    """Each message's history, oldest first."""
    found: dict[str, list[MessageHistory]] = {m: [] for m in message_ids}
    if not message_ids:
        return found
    query = (
        select(MessageHistory)
        .where(col(MessageHistory.message_id).in_(message_ids))
        .order_by(col(MessageHistory.id))
    )
    for row in s.exec(query).all():
        found[row.message_id].append(row)
    return found


def is_opted_out(s: Session, clinic_id: str, phone: str, *, keys: Sequence[bytes] = ()) -> bool:
    """Whether this number said STOP to this clinic (and not START since), also before a
    patient with it was erased (its hash under any of the `[privacy]` `keys`)."""
    query = select(OptOut).where(
        OptOut.clinic_id == clinic_id, col(OptOut.phone).in_(numbers.forms(keys, phone))
    )
    return s.exec(query).first() is not None


def move(
    s: Session,
    message_id: str,
    *,
    to: Status,
    now: datetime,
    allowed_from: Sequence[Status],
    detail: str | None = None,
    code: int | None = None,
    values: dict[str, Any] | None = None,
) -> bool:
    """Move a message from one of `allowed_from` to `to`; False when it was elsewhere."""
    stmt = (
        sa.update(Message)
        .where(col(Message.id) == message_id, col(Message.status).in_(allowed_from))
        .values(status=to, updated_at=now, **(values or {}))
    )
    if s.exec(stmt).rowcount == 0:
        return False
    add_history(s.connection(), [(message_id, to, detail, code)], now=now)
    return True


def due_instants(
    s: Session, until: datetime, *, after: datetime | None = None, limit: int
) -> list[datetime]:
    """The distinct instants before `until` (and after `after`) at which scheduled messages
    fall due, soonest first (a single wake-up claims every message due at or before it)."""
    query = (
        select(Message.due_at)
        .where(Message.status == Status.SCHEDULED, col(Message.due_at) <= until)
        .distinct()
        .order_by(col(Message.due_at))
        .limit(limit)
    )
    if after is not None:
        query = query.where(col(Message.due_at) > after)
    return list(s.exec(query).all())


def stale_claims(s: Session, now: datetime, *, limit: int) -> list[str]:
    """Messages left in `sending` whose lease ran out (a dead or stuck claimer). A merged
    text's parts are not among them: reconciling its lead settles them (docs/merging.md)."""
    query = (
        select(Message.id)
        .where(
            Message.status == Status.SENDING,
            col(Message.lease_until) < now,
            col(Message.merged_into).is_(None),
        )
        .order_by(col(Message.lease_until))
        .limit(limit)
    )
    return list(s.exec(query).all())


def opt_out(s: Session, clinic_id: str, phone: str, *, now: datetime, source: str) -> list[str]:
    """Record a STOP for this clinic's number and cancel its pending messages; their ids."""
    if not is_opted_out(s, clinic_id, phone):
        s.add(OptOut(clinic_id=clinic_id, phone=phone, at=now, source=source))
    query = select(Message.id).where(
        Message.clinic_id == clinic_id, Message.phone == phone, Message.status == Status.SCHEDULED
    )
    cancelled = []
    for message_id in s.exec(query).all():
        if move(
            s,
            message_id,
            to=Status.CANCELLED,
            now=now,
            allowed_from=[Status.SCHEDULED],
            detail=reasons.OPTED_OUT,
            values={"reason": reasons.OPTED_OUT},
        ):
            cancelled.append(message_id)
    return cancelled


# Clinic corrections and the read API's lists (contract §5, §8): every query names its clinic.


def scheduled_of_patient(s: Session, patient_id: int) -> list[Message]:
    """A patient's messages still waiting to be sent, by treatment then plan order."""
    query = (
        select(Message)
        .where(
            Message.patient_id == patient_id,
            Message.status == Status.SCHEDULED,
            # An alert is the on-call number's, a staff text no plan's: corrections skip them
            # (a staff text's new phone, consent and STOP are vetting's, at its claim).
            col(Message.kind).not_in(UNPLANNED),
        )
        .order_by(col(Message.treatment_id), col(Message.send_at), col(Message.id))
    )
    return list(s.exec(query).all())


def messages_by_id(s: Session, message_ids: Sequence[str]) -> list[Message]:
    """These messages as stored now, in plan order."""
    if not message_ids:
        return []
    query = (
        select(Message)
        .where(col(Message.id).in_(message_ids))
        .order_by(col(Message.send_at), col(Message.step), col(Message.seq))
        .execution_options(populate_existing=True)
    )
    return list(s.exec(query).all())


def count_by_status(s: Session) -> dict[str, int]:
    """How many messages are in each status."""
    query = select(Message.status, sa.func.count()).group_by(col(Message.status))
    return {status: int(n) for status, n in s.exec(query).all()}


# One seek into the claim's index on (status, due_at). `due_at`, not `send_at`: a message
# waiting for its retry is not overdue before the retry's time (the failure-ratio alert is
# the one for an outage), and a second index would cost every message insert.
OLDEST_SCHEDULED = select(sa.func.min(Message.due_at)).where(Message.status == Status.SCHEDULED)


def oldest_scheduled(s: Session) -> datetime | None:
    """The earliest `due_at` of a scheduled message, or None."""
    return s.exec(OLDEST_SCHEDULED).one()


_PING = sa.text("SELECT 1")


def ping(s: Session) -> None:
    """One round trip to the database (readiness): raises when it does not answer."""
    s.connection().execute(_PING).all()
