"""Readiness means writable (contract §14): a heartbeat row per instance, written when probed.

`/readyz` asks `WriteCheck.status()`. A result is reused for `FRESH` s when it was "ok" (for
`RETRY` s when it was a failure), so probes cost at most one small write every few seconds per
instance, whatever their rate; between two, nothing is written. The write is an upsert of this
instance's row in `readiness_heartbeat`, through the writer gate at background priority, so a
claim or a send's outcome never waits for it. A probe waits at most `WAIT` s for it: a write
still queued behind others is not a refusal, so while it waits the last result stands, for up
to `STALE` s; a write pending longer than that is a failure ("waiting"), as is one the database
refused (a full disk, a read-only file, a lost or read-only primary).

SQLite reuses the space of its write-ahead log once a checkpoint has copied it back, so a
small write can still succeed on a full disk while anything that needs one more page fails.
On SQLite the check therefore also wants `MIN_FREE_BYTES` free on the database's filesystem.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel

from service.clock import Clock
from service.storage.transactions import Transactions

FRESH = 5.0  # s an "ok" is reused
RETRY = 1.0  # s a failure is reused
WAIT = 1.0  # s a probe waits for the write
STALE = 10.0  # s a pending write may keep the last result standing
MIN_FREE_BYTES = 1 << 20  # on the SQLite file's filesystem


class Heartbeat(SQLModel, table=True):
    """The last write each instance's readiness check made."""

    __tablename__ = "readiness_heartbeat"

    instance: str = Field(primary_key=True, max_length=64)
    beat_at: datetime


def beat(s: Session, *, instance: str, now: datetime) -> None:
    """Write this instance's heartbeat (an update, or an insert the first time)."""
    table = Heartbeat.__table__  # type: ignore[attr-defined]
    conn = s.connection()
    moved = conn.execute(
        sa.update(table).where(table.c.instance == instance).values(beat_at=now)
    ).rowcount
    if not moved:
        conn.execute(sa.insert(table).values(instance=instance[:64], beat_at=now))


class WriteCheck:
    """Whether the database takes a write, cached between probes (see the module's doc)."""

    def __init__(
        self, transactions: Transactions, *, instance: str, clock: Clock, path: Path | None
    ) -> None:
        self.transactions = transactions
        self.instance = instance[:64]
        self.clock = clock
        self.path = path  # the SQLite file; None for PostgreSQL
        self._result: str | None = None
        self._until = 0.0  # time.monotonic() until which `_result` stands
        self._pending: asyncio.Task[None] | None = None
        self._since = 0.0  # when the pending write started

    async def status(self) -> str:
        """ "ok", or "failing: why"."""
        if self._result is not None and time.monotonic() < self._until:
            return self._result
        if self._pending is None:
            self._since = time.monotonic()
            # Never raises (`_write` turns every failure into a result): nothing to report.
            self._pending = asyncio.create_task(self._write())
        await asyncio.wait({self._pending}, timeout=WAIT)
        if self._pending is None:  # done: `_write` set the result
            return self._result or "failing: no result"
        waited = time.monotonic() - self._since
        if self._result is not None and waited < STALE:
            return self._result
        return f"failing: a write has waited {waited:.0f}s"

    async def close(self) -> None:
        """Let a write under way end (before the database closes)."""
        if self._pending is not None:
            await asyncio.wait({self._pending}, timeout=STALE)

    async def _write(self) -> None:
        try:
            result = await self._attempt()
        finally:
            self._pending = None
        self._result = result
        self._until = time.monotonic() + (FRESH if result == "ok" else RETRY)

    async def _attempt(self) -> str:
        now = self.clock.now()
        try:
            await self.transactions.write(lambda s: beat(s, instance=self.instance, now=now))
        except Exception as exc:  # whatever the database said, it did not take the write
            return f"failing: write refused ({type(exc).__name__})"
        free = _free_bytes(self.path)
        if free is not None and free < MIN_FREE_BYTES:
            return f"failing: {free} bytes free beside the database file"
        return "ok"


def _free_bytes(path: Path | None) -> int | None:
    """Bytes an unprivileged writer may still use on `path`'s filesystem (None: no file)."""
    if path is None:
        return None
    try:
        stats = os.statvfs(path.resolve().parent)
    except OSError:
        return None  # the write above says what matters
    return stats.f_bavail * stats.f_frsize
