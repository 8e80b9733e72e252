"""The escalations' answers (contract §10): their shapes, their view, and the clinic's list.

Newest first by `(opened_at, id)`, paged by the same opaque keyset cursor as the message lists
(`paging`), served by the index on (clinic_id, state, opened_at, id)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints, TypeAdapter
from typing_extensions import TypedDict

from service.reads.paging import Cursor, EscalationQuery, encode_cursor
from service.storage import escalation_rows
from service.storage.conversation_tables import Escalation
from service.storage.transactions import Session


class EscalationReply(TypedDict):
    """The reply that opened an escalation."""

    text: str
    at: datetime


class EscalationView(TypedDict):
    """An escalation: its check-in, level, reply and who acknowledged it when."""

    id: str
    code: str | None  # what `ACK <code>` names it by (none for escalations before codes)
    state: Literal["open", "acknowledged"]
    level: Literal["ok", "watch", "urgent", "free_text"]
    reply: EscalationReply
    message_id: str
    treatment_id: str
    patient_id: str
    opened_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    reminded_at: datetime | None


class EscalationPage(TypedDict):
    """A page of escalations, newest first; `next_cursor` is None on the last page."""

    escalations: list[EscalationView]
    next_cursor: str | None


class AcknowledgeBody(BaseModel):
    """Who acknowledges an escalation through the API: the request's schema and its check."""

    model_config = ConfigDict(extra="ignore")

    by: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


ACKNOWLEDGE: TypeAdapter[AcknowledgeBody] = TypeAdapter(AcknowledgeBody)
ESCALATION: TypeAdapter[EscalationView] = TypeAdapter(EscalationView)
ESCALATIONS: TypeAdapter[EscalationPage] = TypeAdapter(EscalationPage)


def json_schema_inputs() -> list[tuple[str, Literal["serialization"], TypeAdapter[Any]]]:
    """The escalations' answers by their names in the OpenAPI document."""
    return [
        ("EscalationView", "serialization", ESCALATION),
        ("EscalationPage", "serialization", ESCALATIONS),
    ]


def view(escalation: Escalation, treatment_id: str, patient_id: str) -> EscalationView:
    """An escalation as the API shows it (no phone numbers)."""
    return {
        "id": escalation.id,
        "code": escalation.code,
        "state": escalation.state,  # type: ignore[typeddict-item]
        "level": escalation.level,  # type: ignore[typeddict-item]
        "reply": {"text": escalation.reply, "at": escalation.opened_at},
        "message_id": escalation.message_id,
        "treatment_id": treatment_id,
        "patient_id": patient_id,
        "opened_at": escalation.opened_at,
        "acknowledged_at": escalation.acknowledged_at,
        "acknowledged_by": escalation.acknowledged_by,
        "reminded_at": escalation.reminded_at,
    }


def one(s: Session, escalation_id: str) -> EscalationView:
    """An escalation's view as stored now."""
    return view(*escalation_rows.listed_one(s, escalation_id))


def page(s: Session, clinic_id: str, query: EscalationQuery) -> EscalationPage:
    """A page of the clinic's escalations, newest first, and the next page's cursor."""
    after = query.after
    rows = escalation_rows.listed_page(
        s,
        clinic_id,
        state=query.state,
        before=None if after is None else (after.send_at, after.id),
        limit=query.limit + 1,
    )
    shown = rows[: query.limit]
    next_cursor = None
    if len(rows) > query.limit:
        last = shown[-1][0]
        next_cursor = encode_cursor(Cursor(last.opened_at, last.id))
    return {"escalations": [view(*row) for row in shown], "next_cursor": next_cursor}
