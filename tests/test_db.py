"""The embedded database: SQLite in WAL mode, aware UTC datetimes in and out, each transaction
one function run whole on the writer's thread (service.storage.transactions)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import StatementError
from sqlmodel import Session

from service.storage.models import OptOut
from service.storage.rows import VARIABLES, insert_rows
from service.storage.transactions import Transactions


@pytest.fixture
async def transactions(db_path: Path) -> AsyncIterator[Transactions]:
    opened = Transactions.open(f"sqlite+aiosqlite:///{db_path}")
    yield opened
    await opened.close()


def _scalar(sql: str) -> Callable[[Session], object]:
    return lambda s: s.connection().exec_driver_sql(sql).scalar()


class TestSqlite:
    async def test_runs_in_wal_mode_with_a_busy_timeout(self, transactions: Transactions) -> None:
        """Readers never block the writer, and a locked database is waited for."""
        mode = await transactions.write(_scalar("PRAGMA journal_mode"))
        timeout = await transactions.write(_scalar("PRAGMA busy_timeout"))
        reader = await transactions.read(_scalar("PRAGMA query_only"))
        assert (mode, timeout, reader) == ("wal", 30000, 1)

    async def test_datetimes_come_back_aware_in_utc(self, transactions: Transactions) -> None:
        """A time stored in any zone is read back as the same instant in UTC."""
        at = datetime(2026, 3, 8, 2, 30, tzinfo=timezone(timedelta(hours=-8)))
        await transactions.write(
            lambda s: s.add(OptOut(clinic_id="c", phone="+14155550123", at=at, source="test"))
        )
        stored = await transactions.read(lambda s: s.get(OptOut, ("c", "+14155550123")))
        assert stored is not None
        assert stored.at == at and stored.at.tzinfo == UTC

    async def test_datetimes_are_stored_as_sqlalchemy_writes_them(
        self, transactions: Transactions
    ) -> None:
        """The text on disk is SQLAlchemy's own SQLite format, so rows written before the
        faster conversion and after it compare and sort alike; both forms read back."""
        at = datetime(2026, 11, 25, 7, 0, 0, 120, tzinfo=timezone(timedelta(hours=-8)))

        def write(s: Session) -> object:
            s.add(OptOut(clinic_id="c", phone="+1", at=at, source="test"))
            s.flush()
            conn = s.connection()
            conn.exec_driver_sql(
                "INSERT INTO opt_out VALUES ('c', '+2', '2026-11-25 15:00:00', 'old')"
            )
            return conn.exec_driver_sql("SELECT at FROM opt_out WHERE phone = '+1'").scalar()

        raw = await transactions.write(write)
        old = await transactions.read(lambda s: s.get(OptOut, ("c", "+2")))
        assert raw == "2026-11-25 15:00:00.000120"
        assert old is not None and old.at == datetime(2026, 11, 25, 15, tzinfo=UTC)

    async def test_naive_datetimes_are_refused(self, transactions: Transactions) -> None:
        """A naive datetime never reaches the database."""
        with pytest.raises(StatementError, match="naive datetime"):
            await transactions.write(
                lambda s: s.add(
                    OptOut(clinic_id="c", phone="+1", at=datetime(2026, 1, 1), source="t")
                )
            )
        assert await transactions.read(_scalar("SELECT count(*) FROM opt_out")) == 0

    async def test_either_url_form_opens_the_same_file(self, db_path: Path) -> None:
        """The configuration's `sqlite+aiosqlite:///` URL and the plain `sqlite:///` one."""
        plain = Transactions.open(f"sqlite:///{db_path}")
        try:
            at = datetime(2026, 11, 25, 15, tzinfo=UTC)
            await plain.write(lambda s: s.add(OptOut(clinic_id="c", phone="+1", at=at, source="t")))
        finally:
            await plain.close()
        configured = Transactions.open(f"sqlite+aiosqlite:///{db_path}")
        try:
            assert await configured.read(_scalar("SELECT source FROM opt_out")) == "t"
        finally:
            await configured.close()


class TestTheWritersThread:
    """Each write transaction is one function on the writer's own thread: BEGIN IMMEDIATE at
    its start, the event loop free while it runs."""

    async def test_begin_immediate_holds_the_write_lock_so_another_writer_waits(
        self, db_path: Path, transactions: Transactions
    ) -> None:
        """From its BEGIN, before any statement of its own, a transaction holds SQLite's write
        lock: another connection cannot begin a write, and another writer (a second replica's
        engine) waits until the first commits, then goes ahead."""
        begun, release = threading.Event(), threading.Event()

        def hold(s: Session) -> None:
            s.connection()  # BEGIN IMMEDIATE, nothing else
            begun.set()
            assert release.wait(10)

        holding = asyncio.create_task(transactions.write(hold))
        other = Transactions.open(f"sqlite+aiosqlite:///{db_path}")
        try:
            await _until(begun.is_set)
            probe = sqlite3.connect(db_path, timeout=0, isolation_level=None)
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                probe.execute("BEGIN IMMEDIATE")
            probe.close()
            second = asyncio.create_task(other.write(_scalar("SELECT 2")))
            await asyncio.sleep(0.2)  # long enough for it to have finished were it not waiting
            assert not second.done()
            release.set()
            assert await second == 2
            await holding
        finally:
            release.set()
            await other.close()

    async def test_the_event_loop_runs_while_a_transaction_does(
        self, transactions: Transactions
    ) -> None:
        """A write waiting on something only the event loop can do (here: a read beside it)
        finishes: the loop is not blocked while the writer's thread works."""
        read_done = threading.Event()

        def wait_for_the_loop(s: Session) -> str:
            s.connection()
            assert read_done.wait(5), "the event loop never ran the read"
            return "written"

        writing = asyncio.create_task(transactions.write(wait_for_the_loop, urgent=True))
        assert await transactions.read(_scalar("SELECT 1")) == 1
        read_done.set()
        assert await writing == "written"
        assert transactions.gate.waiting == 0

    async def test_rows_counts_ids_and_errors(self, transactions: Transactions) -> None:
        """Statements report rows, counts and ids; an error rolls its transaction back whole."""

        def write(s: Session) -> tuple[int | None, int, list[sa.Row[object]]]:
            conn = s.connection()
            conn.execute(sa.text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)"))
            inserted = conn.execute(sa.text("INSERT INTO t (v) VALUES ('a')"))
            conn.execute(
                sa.text("INSERT INTO t (v) VALUES (:v)"), [{"v": f"b{i}"} for i in range(500)]
            )
            updated = conn.execute(sa.text("UPDATE t SET v = v || '!' WHERE id > 1"))
            rows = list(conn.execute(sa.text("SELECT id, v FROM t ORDER BY id")).all())
            return inserted.lastrowid, updated.rowcount, rows

        def fail(s: Session) -> None:
            s.connection().execute(sa.text("INSERT INTO t (v) VALUES ('c')"))
            s.connection().execute(sa.text("INSERT INTO t (v) VALUES ('a')"))

        lastrowid, rowcount, rows = await transactions.write(write)
        with pytest.raises(sa.exc.IntegrityError):
            await transactions.write(fail)
        assert lastrowid == 1 and rowcount == 500
        assert len(rows) == 501 and rows[0] == (1, "a") and rows[-1] == (501, "b499!")
        assert await transactions.read(_scalar("SELECT count(*) FROM t")) == 501


class TestInsertRows:
    async def test_more_rows_than_one_statement_takes_are_inserted_in_several(
        self, transactions: Transactions
    ) -> None:
        """Rows past SQLite's parameter limit go in several statements, each one seen by
        SQLAlchemy's events, and all in the transaction."""
        columns = ("m", "at")
        rows = [(f"msg{i}", "2026-11-30 00:00") for i in range(VARIABLES // 2 + 10)]
        seen: list[str] = []

        def insert(s: Session) -> None:
            conn = s.connection()
            conn.exec_driver_sql("CREATE TABLE h (id INTEGER PRIMARY KEY, m TEXT, at TEXT)")
            insert_rows(conn, "h", columns, rows)

        sa.event.listen(transactions.engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
        await transactions.write(insert)
        assert len([sql for sql in seen if sql.startswith("INSERT INTO h")]) == 2
        assert await transactions.read(_scalar("SELECT count(*) FROM h")) == len(rows)


async def _until(condition: object, timeout: float = 5.0) -> None:
    """Poll `condition` (a callable) until it is true; fail after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():  # type: ignore[operator]
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


class TestMigrations:
    def test_models_and_migrations_agree(self, db_path: Path) -> None:
        """The migrations build exactly the tables the models describe (no drift)."""
        from alembic import command

        from service.storage.database import alembic_config

        command.check(alembic_config(f"sqlite+aiosqlite:///{db_path}"))
