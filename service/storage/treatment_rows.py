"""The statements of a new treatment's batched write (intake.new_treatments): what is stored
already, by unique key, and the patient, treatment and event rows, each kind one statement a
batch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from service.storage import numbers
from service.storage.conversation_tables import KIND_OPT_OUT
from service.storage.tables import EVENT, OPT_OUT, PATIENT, TREATMENT

Key = tuple[str, str]  # (clinic id, an id unique within the clinic)


def _in(*columns: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    return sa.tuple_(*columns).in_(sa.bindparam("keys", expanding=True))


# Built once (see `claims`): running them again costs binding their parameters.
_SEEN_EVENTS = sa.select(EVENT.c.clinic_id, EVENT.c.webhook_id).where(
    _in(EVENT.c.clinic_id, EVENT.c.webhook_id)
)
_SEEN_TREATMENTS = sa.select(TREATMENT.c.clinic_id, TREATMENT.c.external_id).where(
    _in(TREATMENT.c.clinic_id, TREATMENT.c.external_id)
)
_PATIENTS = sa.select(
    PATIENT.c.id, PATIENT.c.clinic_id, PATIENT.c.external_id, PATIENT.c.timezone, PATIENT.c.locale
).where(_in(PATIENT.c.clinic_id, PATIENT.c.external_id))
_OPTED_OUT = sa.select(OPT_OUT.c.clinic_id, OPT_OUT.c.phone).where(
    _in(OPT_OUT.c.clinic_id, OPT_OUT.c.phone)
)
_KIND_OPT_OUTS = sa.select(
    KIND_OPT_OUT.c.clinic_id, KIND_OPT_OUT.c.phone, KIND_OPT_OUT.c.kind, KIND_OPT_OUT.c.word
).where(_in(KIND_OPT_OUT.c.clinic_id, KIND_OPT_OUT.c.phone))
# Rows come back in no set order from a multi-row insert: match them by their unique keys.
_INSERT_PATIENT = sa.insert(PATIENT).returning(
    PATIENT.c.clinic_id, PATIENT.c.external_id, PATIENT.c.id
)
_UPDATE_PATIENT = sa.update(PATIENT).where(PATIENT.c.id == sa.bindparam("p_id"))
_INSERT_TREATMENT = sa.insert(TREATMENT).returning(
    TREATMENT.c.clinic_id, TREATMENT.c.external_id, TREATMENT.c.id
)
_INSERT_EVENT = sa.insert(EVENT)


def _keys(conn: sa.Connection, stmt: sa.Select[Any], keys: Sequence[Key]) -> set[Key]:
    return {(a, b) for a, b in conn.execute(stmt, {"keys": list(keys)}).all()}


def seen_events(conn: sa.Connection, keys: Sequence[Key]) -> set[Key]:
    """The (clinic, webhook id) pairs among `keys` whose event is stored."""
    return _keys(conn, _SEEN_EVENTS, keys)


def seen_treatments(conn: sa.Connection, keys: Sequence[Key]) -> set[Key]:
    """The (clinic, treatment id) pairs among `keys` already stored."""
    return _keys(conn, _SEEN_TREATMENTS, keys)


def _stored_forms(keys: Sequence[Key], secrets: Sequence[bytes]) -> dict[Key, Key]:
    """Each (clinic, stored form) an opt-out of the (clinic, phone) `keys` may be filed under
    (the number, or its hash after an erasure: `numbers`), to the pair it stands for."""
    return {
        (clinic, form): (clinic, phone)
        for clinic, phone in keys
        for form in numbers.forms(secrets, phone)
    }


def opted_out(
    conn: sa.Connection, keys: Sequence[Key], *, secrets: Sequence[bytes] = ()
) -> set[Key]:
    """The (clinic, phone) pairs among `keys` that said STOP to the clinic (also before a
    patient with that number was erased: its hash under one of the `[privacy]` `secrets`)."""
    forms = _stored_forms(keys, secrets)
    return {forms[key] for key in _keys(conn, _OPTED_OUT, list(forms))}


def kind_opt_outs(
    conn: sa.Connection, keys: Sequence[Key], *, secrets: Sequence[bytes] = ()
) -> dict[Key, dict[str, str]]:
    """The (clinic, phone) pairs among `keys` that said `STOP <WORD>` (as `opted_out`):
    kind → word."""
    forms = _stored_forms(keys, secrets)
    found: dict[Key, dict[str, str]] = {}
    for clinic, form, kind, word in conn.execute(_KIND_OPT_OUTS, {"keys": list(forms)}):
        found.setdefault(forms[clinic, form], {})[kind] = word
    return found


def stored_patients(
    conn: sa.Connection, keys: Sequence[Key]
) -> dict[Key, tuple[int, str, str | None]]:
    """The stored patients among (clinic, patient id) `keys`: their row id, zone and locale."""
    rows = conn.execute(_PATIENTS, {"keys": list(keys)}).all()
    return {(c, e): (i, tz, loc) for i, c, e, tz, loc in rows}


def _insert(conn: sa.Connection, stmt: sa.Insert, rows: list[dict[str, Any]]) -> list[int]:
    """Insert `rows` (in one statement where the dialect can); their new ids, in order."""
    if not rows:
        return []
    ids = {(c, e): i for c, e, i in conn.execute(stmt, rows).all()}
    return [ids[row["clinic_id"], row["external_id"]] for row in rows]


def insert_patients(conn: sa.Connection, rows: list[dict[str, Any]]) -> list[int]:
    """Insert patient rows; their new ids, in order."""
    return _insert(conn, _INSERT_PATIENT, rows)


def update_patients(conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
    """Update patients as events report them (each row names its id as `p_id`)."""
    if rows:
        conn.execute(_UPDATE_PATIENT, rows)


def insert_treatments(conn: sa.Connection, rows: list[dict[str, Any]]) -> list[int]:
    """Insert treatment rows; their new ids, in order."""
    return _insert(conn, _INSERT_TREATMENT, rows)


def insert_events(conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
    """Insert the event rows (each with its stored answer)."""
    conn.execute(_INSERT_EVENT, rows)
