"""Bulk rows for the benchmarks, written straight into the service's tables.

The service owns the schema (its migrations run first); this writes what an event would have
planned: patients, treatments, `scheduled` messages and their first history rows. SQLite goes
through the sqlite3 module in big transactions (the service stores datetimes there as naive
UTC strings 'YYYY-MM-DD HH:MM:SS.ffffff', see UTCDateTime in service/storage/models.py); PostgreSQL
through asyncpg's COPY.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

CLINIC = "bench"
FROM_NUMBER = "+14155550100"
EXPIRES_AFTER = timedelta(hours=6)
CHUNK = 50_000

MESSAGE_COLUMNS = (
    "id",
    "clinic_id",
    "treatment_id",
    "patient_id",
    "step",
    "kind",
    "seq",
    "phone",
    "locale",
    "body",
    "send_at",
    "due_at",
    "expires_at",
    "status",
    "reason",
    "attempts",
    "claimed_by",
    "claimed_at",
    "lease_until",
    "provider_id",
    "error_code",
    "sent_at",
    "footer",
    "updated_at",
)
HISTORY_COLUMNS = ("message_id", "at", "status", "detail", "error_code")


@dataclass(frozen=True)
class Batch:
    """`len(send_at)` scheduled messages: message i is due at send_at[i] (epoch seconds), with
    body body(i); `per_treatment` consecutive messages share a patient and treatment, and go
    to that patient's phone, phone(i) of the group's first message (the service follows the
    patient's phone, so a message's phone must be its patient's)."""

    label: str
    send_at: Sequence[float]
    phone: Callable[[int], str]
    body: Callable[[int], str]
    per_treatment: int

    def message_id(self, i: int) -> str:
        return f"msg_{self.label}_{i:010d}"

    @property
    def groups(self) -> int:
        return -(-len(self.send_at) // self.per_treatment)


def utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _sqlite_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _rows(
    batch: Batch,
    treatment_ids: Sequence[int],
    patient_ids: Sequence[int],
    now: datetime,
    stamp: Callable[[datetime], object],
) -> Iterator[tuple[tuple[object, ...], tuple[object, ...]]]:
    now_value = stamp(now)
    for i, epoch in enumerate(batch.send_at):
        g = i // batch.per_treatment
        send_at = utc(epoch)
        due = stamp(send_at)
        mid = batch.message_id(i)
        yield (
            (
                *(mid, CLINIC, treatment_ids[g], patient_ids[g], "bench", "aftercare", i),
                *(batch.phone(g * batch.per_treatment), "en", batch.body(i), due, due),
                *(stamp(send_at + EXPIRES_AFTER), "scheduled", None, 0),
                *(None, None, None, None, None, None, False, now_value),
            ),
            (mid, now_value, "scheduled", None, None),
        )


def _chunks(
    rows: Iterator[tuple[tuple[object, ...], tuple[object, ...]]],
) -> Iterator[tuple[list[tuple[object, ...]], list[tuple[object, ...]]]]:
    """(messages, history) rows CHUNK at a time; the last chunk may be short or empty."""
    messages, history = [], []
    for m, h in rows:
        messages.append(m)
        history.append(h)
        if len(messages) >= CHUNK:
            yield messages, history
            messages, history = [], []
    yield messages, history


# --- SQLite --------------------------------------------------------------------------------
def seed_sqlite(path: str, batch: Batch) -> None:
    """Insert `batch` into the SQLite file at `path` (the service may be running: WAL), in
    transactions of CHUNK messages."""
    now = datetime.now(UTC)
    con = sqlite3.connect(path, timeout=60, isolation_level=None)
    message_sql = (
        f"INSERT INTO message ({', '.join(MESSAGE_COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(MESSAGE_COLUMNS))})"
    )
    history_sql = (
        f"INSERT INTO message_history ({', '.join(HISTORY_COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(HISTORY_COLUMNS))})"
    )
    try:
        con.execute("PRAGMA busy_timeout=60000")
        con.execute("PRAGMA synchronous=NORMAL")
        con.execute("BEGIN IMMEDIATE")
        patient_ids, treatment_ids = _sqlite_parents(con, batch, now)
        rows = _rows(batch, treatment_ids, patient_ids, now, _sqlite_time)
        for i, (messages, history) in enumerate(_chunks(rows)):
            if i:
                con.execute("COMMIT")
                con.execute("BEGIN IMMEDIATE")
            con.executemany(message_sql, messages)
            con.executemany(history_sql, history)
        con.execute("COMMIT")
    finally:
        con.close()


def _sqlite_parents(
    con: sqlite3.Connection, batch: Batch, now: datetime
) -> tuple[list[int], list[int]]:
    """A patient and a treatment per group of `batch`; their ids."""
    patient_ids: list[int] = []
    treatment_ids: list[int] = []
    for g in range(batch.groups):
        cur = con.execute(
            "INSERT INTO patient (clinic_id, external_id, first_name, phone, timezone,"
            " locale, sms_consent, updated_at) VALUES (?,?,?,?,?,?,?,?)",
            (
                CLINIC,
                f"{batch.label}-pt-{g}",
                "Ana",
                batch.phone(g * batch.per_treatment),
                "America/Los_Angeles",
                "en",
                True,
                _sqlite_time(now),
            ),
        )
        patient_ids.append(int(cur.lastrowid or 0))
        cur = con.execute(
            "INSERT INTO treatment (clinic_id, external_id, patient_id, protocol,"
            " completed_at, session_number, sessions_planned, serum, created_at)"
            " VALUES (?,?,?,?,?,?,?,?,?)",
            (
                CLINIC,
                f"{batch.label}-tr-{g}",
                cur.lastrowid,
                "microneedling",
                _sqlite_time(now),
                1,
                3,
                "hyaluronic acid serum",
                _sqlite_time(now),
            ),
        )
        treatment_ids.append(int(cur.lastrowid or 0))
    return patient_ids, treatment_ids


def sqlite_scalar(path: str, sql: str) -> object:
    con = sqlite3.connect(path, timeout=60)
    try:
        return con.execute(sql).fetchone()[0]
    finally:
        con.close()


# --- PostgreSQL ----------------------------------------------------------------------------
async def seed_postgres(dsn: str, batch: Batch) -> None:
    """Insert `batch` into the PostgreSQL database at `dsn` (plain postgresql:// DSN), in one
    transaction, COPY by COPY."""
    now = datetime.now(UTC)
    con = await asyncpg.connect(dsn)
    try:
        async with con.transaction():
            patient_ids, treatment_ids = await _postgres_parents(con, batch, now)
            rows = _rows(batch, treatment_ids, patient_ids, now, lambda d: d)
            for messages, history in _chunks(rows):
                await con.copy_records_to_table(
                    "message", records=messages, columns=MESSAGE_COLUMNS
                )
                await con.copy_records_to_table(
                    "message_history", records=history, columns=HISTORY_COLUMNS
                )
        await con.execute("ANALYZE message")
        await con.execute("ANALYZE message_history")
    finally:
        await con.close()


async def _postgres_parents(
    con: asyncpg.Connection, batch: Batch, now: datetime
) -> tuple[list[int], list[int]]:
    """A patient and a treatment per group of `batch`; their ids."""
    patients = await con.fetch(
        "INSERT INTO patient (clinic_id, external_id, first_name, phone, timezone,"
        " locale, sms_consent, updated_at)"
        " SELECT $1, $2 || ord, 'Ana', phone, 'America/Los_Angeles', 'en', true, $4"
        " FROM unnest($3::text[]) WITH ORDINALITY AS p(phone, ord) ORDER BY ord"
        " RETURNING id",
        CLINIC,
        f"{batch.label}-pt-",
        [batch.phone(g * batch.per_treatment) for g in range(batch.groups)],
        now,
    )
    patient_ids = sorted(r["id"] for r in patients)
    treatments = await con.fetch(
        "INSERT INTO treatment (clinic_id, external_id, patient_id, protocol,"
        " completed_at, session_number, sessions_planned, serum, created_at)"
        " SELECT $1, $2 || ord, pid, 'microneedling', $3, 1, 3,"
        " 'hyaluronic acid serum', $3"
        " FROM unnest($4::int[]) WITH ORDINALITY AS t(pid, ord) ORDER BY ord"
        " RETURNING id",
        CLINIC,
        f"{batch.label}-tr-",
        now,
        patient_ids,
    )
    return patient_ids, sorted(r["id"] for r in treatments)


async def postgres_scalar(dsn: str, sql: str) -> object:
    con = await asyncpg.connect(dsn)
    try:
        return await con.fetchval(sql)
    finally:
        await con.close()


async def create_database(admin_dsn: str, name: str) -> None:
    con = await asyncpg.connect(admin_dsn)
    try:
        await con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await con.execute(f'CREATE DATABASE "{name}"')
    finally:
        await con.close()


async def drop_database(admin_dsn: str, name: str) -> None:
    con = await asyncpg.connect(admin_dsn)
    try:
        await con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await con.close()
