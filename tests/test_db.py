"""The embedded database: SQLite in WAL mode, aware UTC datetimes in and out."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, StatementError

from service.storage.database import create_engine, session_factory
from service.storage.models import OptOut
from service.storage.sqlite_driver import OneTripCursor, insert_rows


class TestSqlite:
    async def test_runs_in_wal_mode_with_a_busy_timeout(self, db_path: Path) -> None:
        """Readers never block the writer, and a locked database is waited for."""
        engine = create_engine(f"sqlite+aiosqlite:///{db_path}")
        async with engine.connect() as conn:
            mode = (await conn.execute(sa.text("PRAGMA journal_mode"))).scalar()
            timeout = (await conn.execute(sa.text("PRAGMA busy_timeout"))).scalar()
        await engine.dispose()
        assert (mode, timeout) == ("wal", 30000)

    async def test_datetimes_come_back_aware_in_utc(self, db_path: Path) -> None:
        """A time stored in any zone is read back as the same instant in UTC."""
        engine = create_engine(f"sqlite+aiosqlite:///{db_path}")
        sessions = session_factory(engine)
        at = datetime(2026, 3, 8, 2, 30, tzinfo=timezone(timedelta(hours=-8)))
        async with sessions.begin() as s:
            s.add(OptOut(clinic_id="c", phone="+14155550123", at=at, source="test"))
        async with sessions() as s:
            stored = await s.get(OptOut, ("c", "+14155550123"))
        await engine.dispose()
        assert stored is not None
        assert stored.at == at and stored.at.tzinfo == UTC

    async def test_datetimes_are_stored_as_sqlalchemy_writes_them(self, db_path: Path) -> None:
        """The text on disk is SQLAlchemy's own SQLite format, so rows written before the
        faster conversion and after it compare and sort alike; both forms read back."""
        engine = create_engine(f"sqlite+aiosqlite:///{db_path}")
        sessions = session_factory(engine)
        at = datetime(2026, 11, 25, 7, 0, 0, 120, tzinfo=timezone(timedelta(hours=-8)))
        async with sessions.begin() as s:
            s.add(OptOut(clinic_id="c", phone="+1", at=at, source="test"))
            await s.flush()
            conn = await s.connection()
            await conn.execute(
                sa.text("INSERT INTO opt_out VALUES ('c', '+2', '2026-11-25 15:00:00', 'old')")
            )
            raw = (await conn.execute(sa.text("SELECT at FROM opt_out WHERE phone = '+1'"))).one()
        async with sessions() as s:
            old = await s.get(OptOut, ("c", "+2"))
        await engine.dispose()
        assert raw[0] == "2026-11-25 15:00:00.000120"
        assert old is not None and old.at == datetime(2026, 11, 25, 15, tzinfo=UTC)

    async def test_naive_datetimes_are_refused(self, db_path: Path) -> None:
        """A naive datetime never reaches the database."""
        engine = create_engine(f"sqlite+aiosqlite:///{db_path}")
        sessions = session_factory(engine)
        with pytest.raises(StatementError, match="naive datetime"):
            async with sessions.begin() as s:
                s.add(OptOut(clinic_id="c", phone="+1", at=datetime(2026, 1, 1), source="t"))
        await engine.dispose()


class TestOneTripCursor:
    """SQLite statements run start to finish in one trip to aiosqlite's thread (issue 5), with
    what a DBAPI cursor reports unchanged."""

    async def test_sqlalchemy_uses_it(self, db_path: Path) -> None:
        engine = create_engine(f"sqlite+aiosqlite:///{db_path}")
        async with engine.connect() as conn:
            raw = await conn.get_raw_connection()
            cursor = raw.dbapi_connection.cursor()  # type: ignore[union-attr]
        await engine.dispose()
        assert isinstance(cursor, OneTripCursor)

    async def test_rows_counts_ids_and_errors(self, db_path: Path) -> None:
        engine = create_engine(f"sqlite+aiosqlite:///{db_path}")
        async with engine.begin() as conn:
            await conn.execute(sa.text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)"))
            inserted = await conn.execute(sa.text("INSERT INTO t (v) VALUES ('a')"))
            await conn.execute(
                sa.text("INSERT INTO t (v) VALUES (:v)"), [{"v": f"b{i}"} for i in range(500)]
            )
            updated = await conn.execute(sa.text("UPDATE t SET v = v || '!' WHERE id > 1"))
            rows = (await conn.execute(sa.text("SELECT id, v FROM t ORDER BY id"))).all()
        with pytest.raises(IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(sa.text("INSERT INTO t (v) VALUES ('c')"))
                await conn.execute(sa.text("INSERT INTO t (v) VALUES ('a')"))
        async with engine.connect() as conn:  # the failed transaction left nothing
            count = (await conn.execute(sa.text("SELECT count(*) FROM t"))).scalar()
        await engine.dispose()
        assert inserted.lastrowid == 1 and updated.rowcount == 500
        assert len(rows) == 501 and rows[0] == (1, "a") and rows[-1] == (501, "b499!")
        assert count == 501

    async def test_a_transaction_begins_in_its_first_statements_trip(self, db_path: Path) -> None:
        """BEGIN IMMEDIATE reaches SQLite with the first statement, in its one trip, and the
        write lock is held from that statement on; a transaction that ran nothing makes no trip
        at all, and neither does the pool's rollback after a commit."""
        engine = create_engine(f"sqlite+aiosqlite:///{db_path}")
        other = sqlite3.connect(db_path, timeout=0, isolation_level=None)
        try:
            async with engine.connect() as conn:
                driver = (await conn.get_raw_connection()).driver_connection
                trips = CountingQueue(driver._tx)  # type: ignore[union-attr]
                driver._tx = trips  # type: ignore[union-attr]
                async with conn.begin():
                    pass
                async with conn.begin():
                    await conn.execute(sa.text("SELECT 1"))
                    with pytest.raises(sqlite3.OperationalError, match="locked"):
                        other.execute("BEGIN IMMEDIATE")
                puts = trips.puts
                other.execute("BEGIN IMMEDIATE")  # released at COMMIT
                other.execute("ROLLBACK")
                await conn.rollback()  # nothing open: no trip
                assert trips.puts == puts
        finally:
            other.close()
            await engine.dispose()
        assert puts == 2  # SELECT 1 with its BEGIN, and its COMMIT; the empty one none

    async def test_inserts_nobody_reads_go_with_the_next_statement(self, db_path: Path) -> None:
        """`insert_rows` waits for the transaction's next statement, or its commit, and goes
        to SQLite in that trip; what follows sees the rows; a rollback drops them; a failing
        insert fails its transaction whole."""
        engine = create_engine(f"sqlite+aiosqlite:///{db_path}")
        try:
            async with engine.connect() as conn:
                await conn.execute(sa.text("CREATE TABLE t (id INTEGER PRIMARY KEY, v UNIQUE)"))
                await conn.commit()
                driver = (await conn.get_raw_connection()).driver_connection
                trips = CountingQueue(driver._tx)  # type: ignore[union-attr]
                driver._tx = trips  # type: ignore[union-attr]
                async with conn.begin():
                    await insert_rows(conn, "t", ("v",), [("a",), ("b",)])
                    seen = (await conn.execute(sa.text("SELECT count(*) FROM t"))).scalar()
                async with conn.begin():
                    await insert_rows(conn, "t", ("v",), [("c",)])
                puts = trips.puts
                with pytest.raises(RuntimeError):
                    async with conn.begin():
                        await insert_rows(conn, "t", ("v",), [("d",)])
                        raise RuntimeError("changed our mind")
                with pytest.raises(IntegrityError):
                    async with conn.begin():
                        await insert_rows(conn, "t", ("v",), [("e",), ("a",)])
                stored = (await conn.execute(sa.text("SELECT v FROM t ORDER BY v"))).scalars()
                values = list(stored)
        finally:
            await engine.dispose()
        assert seen == 2 and values == ["a", "b", "c"]
        assert puts == 3  # SELECT with its BEGIN and the inserts; COMMIT; COMMIT with them all


class CountingQueue:
    """aiosqlite's queue of calls for its thread, counting what is put on it."""

    def __init__(self, queue: Any) -> None:
        self.queue, self.puts = queue, 0

    def put_nowait(self, item: Any) -> None:
        self.puts += 1
        self.queue.put_nowait(item)


class TestMigrations:
    def test_models_and_migrations_agree(self, db_path: Path) -> None:
        """The migrations build exactly the tables the models describe (no drift)."""
        from alembic import command

        from service.storage.database import alembic_config

        command.check(alembic_config(f"sqlite+aiosqlite:///{db_path}"))
