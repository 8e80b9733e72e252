"""What staff do from the console (contract §16), each in the caller's write transaction and each
audited with the staff account's email as actor: acknowledge an escalation (as `ACK` and the
API do: it stops the re-alert), mark an inbox item done, view a patient, reveal a number.

Every function takes the account's clinic ids and refuses (NotFound) anything of another
clinic, as it refuses an unknown id: the console never tells one from the other.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from service.errors import NotFound
from service.reads import escalations as listed
from service.reads import timeline as timelines
from service.reads.escalations import EscalationView
from service.reads.timeline import Timeline
from service.storage import audit, escalation_rows, inbox, store
from service.storage.inbox_tables import ItemKind
from service.storage.transactions import Session

ESCALATION_ACKNOWLEDGED = "escalation_acknowledged"
ITEM_DONE = "item_done"
PATIENT_VIEWED = "patient_viewed"
NUMBER_REVEALED = "number_revealed"


@dataclass(frozen=True)
class Done:
    """An item marked done: now, or before (`already`), by whom and when (an escalation
    acknowledged otherwise names who acknowledged it)."""

    item_id: str
    already: bool
    by: str | None
    at: datetime | None


def acknowledge(
    s: Session, clinic_ids: Collection[str], escalation_id: str, *, by: str, now: datetime
) -> EscalationView:
    """Acknowledge an open escalation as staff `by` (an email): `acknowledged_by` is it, the
    re-alert stops, an `escalation_acknowledged` row is audited. Acknowledging it again
    changes nothing and audits nothing. NotFound for another clinic's or an unknown id."""
    found = escalation_rows.get(s, escalation_id)
    if found is None or found.clinic_id not in clinic_ids:
        raise NotFound("no escalation with that id at a clinic of this account")
    if escalation_rows.acknowledge(s, escalation_id, by=by[:100], now=now):
        store.refresh(s, found)  # the UPDATE went around the session's copy
        view = listed.one(s, escalation_id)
        detail = json.dumps({"escalation_id": escalation_id, "code": found.code})
        _audit(s, found.clinic_id, by, ESCALATION_ACKNOWLEDGED, view["patient_id"], detail, now)
    return listed.one(s, escalation_id)


def mark_done(
    s: Session, clinic_ids: Collection[str], item_id: str, *, by: str, now: datetime
) -> Done:
    """Mark the inbox item `item_id` (`<kind>:<id>`, as `reads.inbox` names it) done as staff
    `by`: it leaves the inbox, an `item_done` row is audited. An open escalation marked done
    is acknowledged too (a person has it: the re-alert stops). An item done before answers
    `already`; NotFound for another clinic's or an unknown item."""
    kind, ref = _parse(item_id)
    row = inbox.item(s.connection(), kind, ref)
    if row is None or row.clinic_id not in clinic_ids:
        return _done_before(s, clinic_ids, kind, ref, item_id)
    if kind is ItemKind.ESCALATION:
        escalation_rows.acknowledge(s, ref, by=by[:100], now=now)
    inbox.mark_done(s.connection(), kind, ref, clinic_id=row.clinic_id, by=by, now=now)
    detail = json.dumps({"item": item_id})
    _audit(s, row.clinic_id, by, ITEM_DONE, row.patient_id, detail, now)
    return Done(item_id, already=False, by=by, at=now)


def _parse(item_id: str) -> tuple[ItemKind, str]:
    kind, _, ref = item_id.partition(":")
    if kind not in ItemKind.__members__.values() or not ref or len(ref) > 32:
        raise NotFound("no inbox item with that id")
    return ItemKind(kind), ref


def _done_before(
    s: Session, clinic_ids: Collection[str], kind: ItemKind, ref: str, item_id: str
) -> Done:
    mark = inbox.done_mark(s, kind, ref)
    if mark is not None and mark.clinic_id in clinic_ids:
        return Done(item_id, already=True, by=mark.done_by, at=mark.done_at)
    escalation = escalation_rows.get(s, ref) if kind is ItemKind.ESCALATION else None
    if escalation is not None and escalation.clinic_id in clinic_ids:
        return Done(item_id, True, escalation.acknowledged_by, escalation.acknowledged_at)
    raise NotFound("no inbox item with that id at a clinic of this account")


def view_patient(
    s: Session,
    clinic_ids: Collection[str],
    clinic_id: str,
    patient_id: str,
    *,
    by: str,
    now: datetime,
) -> Timeline:
    """The patient's timeline (`reads.timeline.timeline`), audited as `patient_viewed`."""
    found = timelines.timeline(s, clinic_ids, clinic_id, patient_id)
    _audit(s, clinic_id, by, PATIENT_VIEWED, patient_id, None, now)
    return found


def reveal_number(
    s: Session,
    clinic_ids: Collection[str],
    clinic_id: str,
    patient_id: str,
    *,
    by: str,
    now: datetime,
) -> str:
    """The patient's whole number (`Show number`), audited as `number_revealed`; NotFound as
    `reads.timeline.find`."""
    found = timelines.find(s, clinic_ids, clinic_id, patient_id)
    _audit(s, clinic_id, by, NUMBER_REVEALED, patient_id, None, now)
    return found.phone


def _audit(
    s: Session,
    clinic_id: str,
    actor: str,
    action: str,
    patient_id: str | None,
    detail: str | None,
    now: datetime,
) -> None:
    audit.record(
        s.connection(),
        clinic_id=clinic_id,
        actor=actor,
        action=action,
        patient_id=patient_id,
        detail=detail,
        now=now,
    )
