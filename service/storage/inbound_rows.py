"""Patients' texts as kept (`inbound`): once per Twilio `MessageSid`, with the answer they got.

Twilio retries a webhook it got no timely answer to; the retry carries the same `MessageSid`.
The row is written first, `INSERT … ON CONFLICT (provider_id) DO NOTHING`: the one that
inserts acts on the text, any other finds the row and answers what the first did. On
PostgreSQL a retry reaching another replica while the first is still in its transaction waits
on the unique index until that commits, then finds the row; no unique violation fails a batch.
"""

from __future__ import annotations

from typing import Any, NamedTuple, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from service.storage.models import Inbound

INBOUND = cast(sa.Table, Inbound.__table__)  # type: ignore[attr-defined]
IN = INBOUND.c
BODY_LIMIT = 1600  # characters kept: Twilio's longest concatenated text
OUTSIDE = "outside"  # the level of a text that is no keyword and answered no check-in's window
FREE_TEXT = "free_text"  # the level of a reply to a staff text: for a person to read
PHOTO = "photo"  # a reply with a photo, unless its text is urgent (contract §17)


class Kept(NamedTuple):
    """A text kept before: the answer it got and its keyword."""

    answer: str | None
    keyword: str | None


_KEPT = sa.select(IN.answer, IN.keyword).where(IN.provider_id == sa.bindparam("sid"))
_ANSWER = (
    sa.update(INBOUND)
    .where(IN.id == sa.bindparam("row_id"))
    .values(answer=sa.bindparam("new_answer"))
)


def keep(conn: sa.Connection, *, provider_id: str | None, **row: Any) -> int | None:
    """Insert a text (`clinic_id`, `phone`, `channel`, `body`, `keyword`, `received_at`); its
    row id, or None when a text of that `provider_id` is kept already."""
    values = {**row, "provider_id": provider_id, "body": row["body"][:BODY_LIMIT]}
    insert = _insert(conn).values(values).on_conflict_do_nothing(index_elements=["provider_id"])
    found = conn.execute(insert.returning(IN.id)).first()
    return None if found is None else int(found.id)


def _insert(conn: sa.Connection) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT (SQLite ≥ 3.24 and PostgreSQL)."""
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(INBOUND)


def kept(conn: sa.Connection, provider_id: str) -> Kept:
    """The text kept with `provider_id` (call it after `keep` found one)."""
    answer, keyword = conn.execute(_KEPT, {"sid": provider_id}).one()
    return Kept(answer, keyword)


def record_answer(conn: sa.Connection, row_id: int, answer: str | None) -> None:
    """Keep the answer a text got, to give Twilio's retry of it."""
    if answer is not None:
        conn.execute(_ANSWER, {"row_id": row_id, "new_answer": answer})


_REPLY = (
    sa.update(INBOUND)
    .where(IN.id == sa.bindparam("row_id"))
    .values(
        clinic_id=sa.bindparam("new_clinic"),
        level=sa.bindparam("new_level"),
        message_id=sa.bindparam("new_message"),
        patient_id=sa.bindparam("new_patient"),
    )
)


def record_reply(
    conn: sa.Connection,
    row_id: int,
    *,
    clinic_id: str | None,
    level: str,
    message_id: str | None,
    patient_id: int | None,
) -> None:
    """Record what a text that is no keyword came to: the clinic and message it answered
    (the check-in, else the last message sent), that message's patient, and its level."""
    values = {"new_clinic": clinic_id, "new_level": level, "new_message": message_id}
    conn.execute(_REPLY, {"row_id": row_id, **values, "new_patient": patient_id})
