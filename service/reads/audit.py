"""The audit trail's answer (contract §16): a clinic's audit rows, newest first, paged by the
same opaque keyset cursor as the other lists (`paging`) on (at, id)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import TypeAdapter
from typing_extensions import TypedDict

from service.reads.paging import AuditQuery, Cursor, encode_cursor
from service.storage import audit
from service.storage.transactions import Session


class AuditView(TypedDict):
    """One audited act: who (`cli`, `api`, a staff account's email), what, about which of the
    clinic's patients, and its detail (no personal data)."""

    id: int
    at: datetime
    actor: str
    action: str
    patient_id: str | None
    detail: str | None


class AuditPage(TypedDict):
    """A page of audit rows, newest first; `next_cursor` is None on the last page."""

    audit: list[AuditView]
    next_cursor: str | None


AUDIT_PAGE: TypeAdapter[AuditPage] = TypeAdapter(AuditPage)


def json_schema_inputs() -> list[tuple[str, Literal["serialization"], TypeAdapter[Any]]]:
    """The audit answer by its name in the OpenAPI document."""
    return [("AuditPage", "serialization", AUDIT_PAGE)]


def page(s: Session, clinic_id: str, query: AuditQuery) -> AuditPage:
    """A page of the clinic's audit rows and the next page's cursor."""
    after = None if query.after is None else (query.after.send_at, int(query.after.id))
    rows = audit.page(s.connection(), clinic_id, limit=query.limit + 1, after=after)
    shown: list[AuditView] = [
        {
            "id": r.id,
            "at": r.at,
            "actor": r.actor,
            "action": r.action,
            "patient_id": r.patient_id,
            "detail": r.detail,
        }
        for r in rows[: query.limit]
    ]
    more = len(rows) > query.limit
    last = shown[-1] if shown else None
    cursor = encode_cursor(Cursor(last["at"], str(last["id"]))) if more and last else None
    return {"audit": shown, "next_cursor": cursor}
