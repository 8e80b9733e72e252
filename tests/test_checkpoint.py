"""WAL checkpoints run beside the writer, never inside its commits (service.storage.checkpoint)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import Session

from service.storage.checkpoint import checkpointing, database_file
from service.storage.transactions import Transactions

PAGE = 4096
PAGES = 1500  # past SQLite's default autocheckpoint (1,000 pages), under the backstop


async def _fill(transactions: Transactions, pages: int) -> None:
    """Write about `pages` pages through the service's writer, in 20 commits."""

    def insert(s: Session) -> None:
        s.connection().execute(
            sa.text("INSERT INTO scratch VALUES (randomblob(:n))"),
            [{"n": PAGE - 200}] * (pages // 20),
        )

    await transactions.write(
        lambda s: s.connection().exec_driver_sql("CREATE TABLE scratch (b BLOB)")
    )
    for _ in range(20):
        await transactions.write(insert)


async def _grown(path: Path, size: int, *, deadline: float) -> bool:
    while path.stat().st_size < size and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return path.stat().st_size >= size


class TestCheckpoints:
    async def test_the_writers_commits_leave_the_log_to_the_checkpointer(
        self, db_path: Path
    ) -> None:
        """1,500 pages committed: none copied into the database file by the commits (each
        would have waited for that copy and its fsync); the checkpointer copies them all."""
        url = f"sqlite+aiosqlite:///{db_path}"
        transactions = Transactions.open(url)
        try:
            before = db_path.stat().st_size
            await _fill(transactions, PAGES)
            wal = db_path.with_name(db_path.name + "-wal")
            assert db_path.stat().st_size == before
            assert wal.stat().st_size >= PAGES * PAGE
            async with checkpointing(url, every=0.05):
                assert await _grown(db_path, before + PAGES * PAGE, deadline=time.monotonic() + 10)
        finally:
            await transactions.close()

    async def test_a_path_with_spaces_and_a_hash_is_checkpointed(
        self, tmp_path: Path, db_path: Path
    ) -> None:
        odd = tmp_path / "clinic data #2" / "aftercare.db"
        odd.parent.mkdir()
        odd.write_bytes(db_path.read_bytes())
        url = f"sqlite+aiosqlite:///{odd}"
        transactions = Transactions.open(url)
        try:
            before = odd.stat().st_size
            await _fill(transactions, PAGES)
            async with checkpointing(url, every=0.05):
                assert await _grown(odd, before + PAGES * PAGE, deadline=time.monotonic() + 10)
        finally:
            await transactions.close()

    def test_only_an_sqlite_file_is_checkpointed(self, tmp_path: Path) -> None:
        assert database_file(f"sqlite+aiosqlite:///{tmp_path}/a.db") == tmp_path / "a.db"
        assert database_file("sqlite+aiosqlite:///:memory:") is None
        assert database_file("postgresql+asyncpg://127.0.0.1/test") is None
