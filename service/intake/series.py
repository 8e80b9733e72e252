"""The series' events (contract §13), each whole in one transaction: a plain function of a sync
`Session` run by `transactions.Transactions`, idempotent as contract §5 asks.

The same webhook id with the same body answers its first answer again (200) and changes
nothing; with another body 409. A refusal (422, 409) raises inside the transaction, so it
rolls back whole: nothing is stored, not even the event. What each event does is in
`intake.appointments` and `intake.amend`; what they share (the transaction's context, and how
a message changes) is here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from service.errors import Conflict, FieldError, Unprocessable
from service.intake.envelope import Envelope
from service.intake.planner import Planner
from service.planning.protocols import PlannedMessage
from service.planning.timing import zone
from service.storage import daily, message_rows, notices, store
from service.storage.message_rows import NewMessage, new_message
from service.storage.models import Event, Message, Patient, Status, Treatment, row_id
from service.storage.transactions import IntegrityError, Session, Transactions


@dataclass(frozen=True)
class EventAnswer:
    """An event's answer: status, JSON body, the messages now due to be armed, and the
    event's type (for metrics)."""

    status: int
    body: str
    due: Sequence[tuple[str, datetime]] = ()
    type: str = "unknown"


@dataclass
class Context:
    """One event's transaction: where, when, and what it changed (for its answer and its
    timers)."""

    s: Session
    planner: Planner
    clinic_id: str
    event_id: str
    source: str  # the event's type, in each history entry it writes
    now: datetime
    changed: list[str] = field(default_factory=list)
    due: list[tuple[str, datetime]] = field(default_factory=list)

    def end(self, row: Message, status: Status, reason: str) -> None:
        """Move a scheduled message to `status` for `reason` (nothing if it was not)."""
        if store.move(
            self.s,
            row.id,
            to=status,
            now=self.now,
            allowed_from=[Status.SCHEDULED],
            detail=f"{reason} ({self.source})",
            values={"reason": reason},
        ):
            self.changed.append(row.id)

    def change(self, row: Message, values: dict[str, Any], what: str, *, late: str) -> None:
        """Give a scheduled message new values (time, text); it stays scheduled. A time moved
        so far back that the message can no longer go out expires it instead, for `late`."""
        if not values:
            return
        expired = values.get("expires_at", row.expires_at) <= self.now
        to = Status.EXPIRED if expired else Status.SCHEDULED
        detail = f"{late} ({self.source})" if expired else f"{self.source}: {what}"
        if expired:
            values = {**values, "reason": late}
        if store.move(
            self.s,
            row.id,
            to=to,
            now=self.now,
            allowed_from=[Status.SCHEDULED],
            detail=detail,
            values=values,
        ):
            self.changed.append(row.id)
            if expired:
                settings = self.planner.settings
                notices.expired_by_event(self.s.connection(), settings, row.id, now=self.now)
            elif "due_at" in values:
                self.due.append((row.id, values["due_at"]))

    def row(
        self, planned: PlannedMessage, treatment: Treatment, patient: Patient, reason: str | None
    ) -> NewMessage:
        """A planned message of the treatment as a new row (`message_rows.new_message`)."""
        return new_message(
            planned,
            clinic_id=self.clinic_id,
            treatment_id=row_id(treatment.id),
            patient_id=row_id(patient.id),
            phone=patient.phone,
            reason=reason,
            now=self.now,
        )

    def add(self, rows: Sequence[NewMessage], *, treatment_id: int, patient_id: int) -> None:
        """Insert new messages of a treatment and patient (each with its first history entry);
        count them as changed, and the scheduled ones as due."""
        message_rows.insert(self.s.connection(), [(list(rows), (treatment_id, patient_id))])
        self.changed.extend(m.id for m in rows)
        self.due.extend((m.id, m.send_at) for m in rows if m.status == Status.SCHEDULED)

    def limit(self, patient_id: int) -> None:
        """Apply the daily limit again to the patient's scheduled messages (docs/day.md), now
        that this event planned or moved some; what it cancels counts as changed."""
        patient = store.patient(self.s, patient_id)
        assert patient is not None, "a message has a patient"
        self.changed.extend(limit_patient(self.s, self.planner, patient, self.now, self.source))

    def unknown(self, field_path: str, what: str, hint: str) -> Unprocessable:
        """The 422 for an id this clinic does not know."""
        return Unprocessable(
            f"the {what} is unknown",
            errors=[FieldError(field_path, f"this clinic has no {what} with that id{hint}")],
        )


def limit_patient(
    s: Session, planner: Planner, patient: Patient, now: datetime, source: str
) -> list[str]:
    """`storage.daily.reapply` for a patient with the configured limit and merge window."""
    sms = planner.settings.sms
    return daily.reapply(
        s,
        row_id(patient.id),
        tz=zone(patient.timezone),
        limit=sms.max_per_day,
        window=sms.merge_window,
        now=now,
        source=source,
    )


def timing_values(row: Message, send_at: datetime, expires_at: datetime) -> dict[str, Any]:
    """A message's new time: `send_at`, `due_at` (a pending retry kept when later) and expiry."""
    waiting_to_retry = row.due_at > row.send_at
    due_at = max(send_at, row.due_at) if waiting_to_retry else send_at
    return {"send_at": send_at, "due_at": due_at, "expires_at": expires_at}


def followed_values(row: Message, planned: PlannedMessage) -> dict[str, Any]:
    """What a scheduled message takes from its occurrence in a new plan: its time (as
    `timing_values`) and its text, where they differ; empty when nothing does."""
    values: dict[str, Any] = {}
    if planned.send_at != row.send_at:
        values.update(timing_values(row, planned.send_at, planned.expires_at))
    if (planned.body, planned.locale) != (row.body, row.locale):
        values.update(body=planned.body, locale=planned.locale)
    return values


Apply = Callable[[Context, Any], EventAnswer]


class Series:
    """Runs a series' event in one transaction, once."""

    def __init__(self, *, planner: Planner, transactions: Transactions) -> None:
        self.planner = planner
        self.transactions = transactions

    async def handle(self, envelope: Envelope, event: Any, apply: Apply) -> EventAnswer:
        """Apply the event (or answer its replay); a rival delivery's win answers as a
        replay."""

        def work(s: Session) -> EventAnswer:
            previous = replayed(s, envelope)
            if previous is not None:
                return previous
            context = Context(
                s, self.planner, envelope.clinic_id, envelope.webhook_id, event.type, envelope.now
            )
            answer = apply(context, event)
            record(s, envelope, answer)
            return answer

        try:
            return await self.transactions.write(work)
        except IntegrityError:
            return await self.transactions.write(work)


def replayed(s: Session, envelope: Envelope) -> EventAnswer | None:
    """The first answer to this webhook id again (None when it is new); Conflict when it came
    with another body."""
    previous = store.find_event(s, envelope.clinic_id, envelope.webhook_id)
    if previous is None:
        return None
    if previous.body_sha256 != envelope.digest:
        raise Conflict("this webhook-id was already used with a different body")
    return EventAnswer(200, previous.response, type=previous.type)


def record(s: Session, envelope: Envelope, answer: EventAnswer) -> None:
    """Store the event's answer under its webhook id, for its replays to answer again."""
    store.add(
        s,
        Event(
            clinic_id=envelope.clinic_id,
            webhook_id=envelope.webhook_id,
            body_sha256=envelope.digest,
            type=answer.type,
            status_code=answer.status,
            response=answer.body,
            received_at=envelope.now,
            patient_id=concerned(answer.body),
        ),
    )


def concerned(body: str) -> str | None:
    """The clinic's id of the patient an event's answer names (for an erasure to find it)."""
    data = json.loads(body)
    for key in ("treatment", "appointment"):
        if isinstance(data.get(key), dict):
            return str(data[key]["patient_id"])
    patient = data.get("patient")
    return str(patient["id"]) if isinstance(patient, dict) else None
