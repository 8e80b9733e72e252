"""Erasing a patient (contract §19): one transaction that cancels what is still to be sent and
overwrites, at once, everything that names them — first name, number, bodies, replies,
escalation texts, the notifications and stored event answers that carried them.

What is left are ids, kinds, times and statuses: no digit of the number, not even the last
four a mask shows. An opt-out the number said is kept as its keyed hash (`numbers`), unless
another patient of the clinic still has the number (their rows keep it anyway).
Rows are found by indexed columns (the patient's row id, the clinic's index of its events,
the number); the clinic's notifications by their text, which retention keeps short.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, NamedTuple, cast

import sqlalchemy as sa
from sqlmodel import Session

from service.observability.masking import MASK
from service.storage import numbers, reasons, store
from service.storage.conversation_tables import ESCALATION, KIND_OPT_OUT
from service.storage.media_tables import MEDIA
from service.storage.models import ALERT, Inbound, Patient, Status, row_id
from service.storage.moves import add_history
from service.storage.outbox import NOTIFICATION
from service.storage.tables import EVENT, HISTORY, MESSAGE, OPT_OUT, PATIENT

INBOUND = cast(sa.Table, Inbound.__table__)  # type: ignore[attr-defined]
M, H = MESSAGE.c, HISTORY.c
# JSON keys whose values name a person: a patient view's, a message's `to`, a reply's text.
PERSONAL_KEYS = frozenset({"first_name", "phone", "to", "text"})
_REPLIED = re.compile(r'^replied ".*" \((\w+)\)$', re.DOTALL)
_NUMBER = re.compile(r"•+\d*|\+\d{4,}")  # a masked number (with its last four) or a whole one


class Erasure(NamedTuple):
    """What an erasure did (or, repeated, what the first one did)."""

    erased_at: datetime
    counts: dict[str, int]
    fresh: bool  # False: the patient was erased before and nothing new was reported since


def erase(
    s: Session, clinic_id: str, external_id: str, *, keys: Sequence[bytes], now: datetime
) -> Erasure | None:
    """Erase the clinic's patient `external_id` in this transaction; None when unknown."""
    patient = store.find_patient(s, clinic_id, external_id)
    if patient is None:
        return None
    if _done(patient):
        assert patient.erased_at is not None and patient.erasure is not None
        return Erasure(patient.erased_at, json.loads(patient.erasure), fresh=False)
    conn, pid, phone = s.connection(), row_id(patient.id), patient.phone
    counts = {
        "cancelled": _cancel(conn, pid, now=now),
        "messages": _messages(conn, pid),
        "history": _history(conn, pid),
        "escalations": _escalations(conn, pid),
        "media": _media(conn, clinic_id, phone, pid),  # before the replies lose their number
        "replies": _replies(conn, clinic_id, phone),
        "events": _events(conn, clinic_id, external_id),
        "notifications": _notifications(conn, clinic_id, external_id),
        "opt_outs": _opt_outs(conn, clinic_id, phone, pid, keys=keys, now=now),
    }
    conn.execute(
        sa.update(PATIENT)
        .where(PATIENT.c.id == pid)
        .values(first_name="", phone="", sms_consent=False, erased_at=now, updated_at=now)
        .values(erasure=json.dumps(counts, separators=(",", ":")))
    )
    return Erasure(now, counts, fresh=True)


def _done(patient: Patient) -> bool:
    """Erased already, and neither a name nor a number reported since."""
    return patient.erased_at is not None and not patient.first_name and not patient.phone


def _cancel(conn: sa.Connection, pid: int, *, now: datetime) -> int:
    """The patient's scheduled messages (alerts about them too) cancelled, in history."""
    ids = conn.execute(
        sa.update(MESSAGE)
        .where(M.patient_id == pid, M.status == Status.SCHEDULED)
        .values(status=Status.CANCELLED, reason=reasons.PATIENT_ERASED, updated_at=now)
        .returning(M.id)
    ).scalars()
    entries = [(i, Status.CANCELLED.value, reasons.PATIENT_ERASED, None) for i in ids]
    add_history(conn, entries, now=now)
    return len(entries)


def _messages(conn: sa.Connection, pid: int) -> int:
    """Every message's body blanked, and the number of each to the patient (an alert's is
    the on-call nurse's, not theirs)."""
    keep_nurse = sa.case((M.kind == ALERT, M.phone), else_=sa.literal(""))
    done = conn.execute(
        sa.update(MESSAGE).where(M.patient_id == pid).values(body="", phone=keep_nurse)
    )
    return int(done.rowcount)


def scrub_detail(detail: str) -> str:
    """A history entry's detail without the reply it quoted or any number, masked or not."""
    if detail.startswith("patient replied:"):
        return "patient replied (erased)"
    replied = _REPLIED.match(detail)
    if replied:
        return f"replied ({replied.group(1)})"
    return _NUMBER.sub(MASK, detail)


def _history(conn: sa.Connection, pid: int) -> int:
    of_patient = sa.select(M.id).where(M.patient_id == pid)
    rows = conn.execute(
        sa.select(H.id, H.detail).where(H.message_id.in_(of_patient), H.detail.is_not(None))
    ).all()
    scrubbed = [(i, d, scrub_detail(d)) for i, d in rows]
    changed = [{"h_id": i, "d": new} for i, old, new in scrubbed if new != old]
    if changed:
        conn.execute(
            sa.update(HISTORY).where(H.id == sa.bindparam("h_id")).values(detail=sa.bindparam("d")),
            changed,
        )
    return len(changed)


def _escalations(conn: sa.Connection, pid: int) -> int:
    of_patient = sa.select(M.id).where(M.patient_id == pid)
    done = conn.execute(
        sa.update(ESCALATION).where(ESCALATION.c.message_id.in_(of_patient)).values(reply="")
    )
    return int(done.rowcount)


def _replies(conn: sa.Connection, clinic_id: str, phone: str) -> int:
    """Texts from the number to the clinic (or to no clinic in particular), blanked."""
    if not phone:
        return 0
    c = INBOUND.c
    to_clinic = sa.or_(c.clinic_id == clinic_id, c.clinic_id.is_(None))
    done = conn.execute(
        sa.update(INBOUND).where(c.phone == phone, to_clinic).values(body="", phone="", answer=None)
    )
    return int(done.rowcount)


def _media(conn: sa.Connection, clinic_id: str, phone: str, pid: int) -> int:
    """The patient's photos deleted, bytes and all: theirs, or of their number's texts."""
    c = INBOUND.c
    texts = sa.select(c.id).where(c.phone == phone, c.clinic_id == clinic_id) if phone else None
    mine = MEDIA.c.patient_id == pid
    where = mine if texts is None else sa.or_(mine, MEDIA.c.inbound_id.in_(texts))
    return int(conn.execute(sa.delete(MEDIA).where(where)).rowcount)


def scrub_json(value: Any) -> Any:
    """`value` with the strings of `PERSONAL_KEYS` blanked, at any depth."""
    if isinstance(value, dict):
        return {
            k: "" if k in PERSONAL_KEYS and isinstance(v, str) else scrub_json(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [scrub_json(v) for v in value]
    return value


def _rewrite(
    conn: sa.Connection,
    table: sa.Table,
    column: str,
    rows: Sequence[tuple[Any, str]],
    keep: Callable[[Any], bool],
) -> int:
    """Rewrite the JSON text of `column` in `rows` (id, text) scrubbed, where `keep` says
    the document is the patient's; how many changed."""
    changed = []
    for row_key, text in rows:
        document = json.loads(text)
        scrubbed = scrub_json(document)
        if keep(document) and scrubbed != document:
            changed.append({"r_id": row_key, "v": json.dumps(scrubbed, separators=(",", ":"))})
    if changed:
        update = sa.update(table).where(table.c.id == sa.bindparam("r_id"))
        conn.execute(update.values({column: sa.bindparam("v")}), changed)
    return len(changed)


def _events(conn: sa.Connection, clinic_id: str, external_id: str) -> int:
    """The stored answers to the clinic's events about the patient, scrubbed."""
    c = EVENT.c
    query = sa.select(c.id, c.response).where(c.clinic_id == clinic_id, c.patient_id == external_id)
    return _rewrite(conn, EVENT, "response", conn.execute(query).all(), lambda _doc: True)


def names(document: dict[str, Any], external_id: str) -> bool:
    """Whether a notification's body names the patient: its message's, or among its
    `patient_ids` (a number several patients share)."""
    data = document.get("data") or {}
    message = data.get("message") or {}
    return message.get("patient_id") == external_id or external_id in data.get("patient_ids", ())


def _notifications(conn: sa.Connection, clinic_id: str, external_id: str) -> int:
    c = NOTIFICATION.c
    query = sa.select(c.id, c.body).where(
        c.clinic_id == clinic_id, c.body.contains(json.dumps(external_id), autoescape=True)
    )
    rows = conn.execute(query).all()
    return _rewrite(conn, NOTIFICATION, "body", rows, lambda doc: names(doc, external_id))


def _opt_outs(
    conn: sa.Connection,
    clinic_id: str,
    phone: str,
    pid: int,
    *,
    keys: Sequence[bytes],
    now: datetime,
) -> int:
    """The number's opt-outs at the clinic kept as its hash under the first key (none to do
    when another patient of the clinic still has the number)."""
    if not phone or _shared(conn, clinic_id, phone, pid):
        return 0
    kept = 0
    for table in (OPT_OUT, KIND_OPT_OUT):
        mine = sa.and_(table.c.clinic_id == clinic_id, table.c.phone == phone)
        rows = [dict(r._mapping) for r in conn.execute(sa.select(table).where(mine))]
        if not rows:
            continue
        assert keys, "an erasure is refused without [privacy] number_keys"
        conn.execute(sa.delete(table).where(mine))
        _insert_missing(conn, table, [{**r, "phone": numbers.digest(keys[0], phone)} for r in rows])
        kept += len(rows)
    return kept


def _shared(conn: sa.Connection, clinic_id: str, phone: str, pid: int) -> bool:
    p = PATIENT.c
    other = sa.select(p.id).where(p.clinic_id == clinic_id, p.phone == phone, p.id != pid)
    return conn.execute(other.limit(1)).first() is not None


def _insert_missing(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Insert the rows whose primary key is not stored yet (the hash may be, from another
    patient with the number erased before)."""
    key_columns = list(table.primary_key.columns)
    for row in rows:
        key = sa.and_(*(col == row[col.name] for col in key_columns))
        if conn.execute(sa.select(*key_columns).where(key)).first() is None:
            conn.execute(table.insert(), row)


def unhash(conn: sa.Connection, pairs: Sequence[tuple[str, str]], *, keys: Sequence[bytes]) -> int:
    """The opt-outs kept as the hash of a (clinic, number) of `pairs` name the number again,
    now that a patient of the clinic has it: every check then sees them as any STOP (the last
    check before a send compares numbers, not hashes). The rows moved."""
    hashed = {(c, numbers.digest(key, phone)): phone for c, phone in pairs for key in keys}
    if not hashed:
        return 0
    moved = 0
    for table in (OPT_OUT, KIND_OPT_OUT):
        kept = sa.tuple_(table.c.clinic_id, table.c.phone).in_(list(hashed))
        rows = [dict(r._mapping) for r in conn.execute(sa.select(table).where(kept))]
        if rows:
            conn.execute(sa.delete(table).where(kept))
            named = [{**r, "phone": hashed[r["clinic_id"], r["phone"]]} for r in rows]
            _insert_missing(conn, table, named)
            moved += len(rows)
    return moved
