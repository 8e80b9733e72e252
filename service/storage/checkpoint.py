"""SQLite's WAL checkpoints, off the writer's path.

In WAL mode SQLite copies the log back into the database file (a checkpoint, with an fsync of
each) in the commit that takes the log past `wal_autocheckpoint` pages, and that commit waits
for it. Twilio's status callbacks fill those pages every few seconds under a steady load, so
every few seconds a claim waited behind one and a due message went out late
(docs/benchmarks.md). The writer's connection checkpoints only as a backstop (`BACKSTOP_PAGES`,
should this task stop); a connection of its own checkpoints every `EVERY` seconds, on a thread,
in PASSIVE mode: it never waits for the writer or a reader, and copies what they allow.

A checkpoint that fails (a full disk, an I/O error) ends the loop; under a `Supervisor` the
failure is logged and counted and the loop starts again after a backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from sqlalchemy import make_url

from service.observability.supervision import Supervisor

log = logging.getLogger("aftercare.checkpoint")
EVERY = 1.0  # seconds between checkpoints
BACKSTOP_PAGES = 16384  # the writer checkpoints itself past 64 MB of log (4 KB pages)


def database_file(url: str) -> Path | None:
    """The file of an SQLite URL; None for PostgreSQL or an in-memory database."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def checkpoint(conn: sqlite3.Connection) -> tuple[int, int, int]:
    """One PASSIVE checkpoint: (busy, pages in the log, pages copied into the database)."""
    busy, pages, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return int(busy), int(pages), int(copied)


TRUNCATE_TRIES = 20  # a reader holding an old snapshot keeps the log; it ends within moments


def truncate(conn: sqlite3.Connection) -> bool:
    """Copy the whole log into the database and truncate it to nothing (after an erasure:
    no older image of a page stays in it); False when readers kept it busy every try. Run on
    the writer's connection, outside a transaction (its busy timeout waits for readers)."""
    for _ in range(TRUNCATE_TRIES):
        busy, _pages, _copied = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if not busy:
            return True
        time.sleep(0.05)
    return False


@contextlib.asynccontextmanager
async def checkpointing(
    url: str, *, every: float = EVERY, supervisor: Supervisor | None = None
) -> AsyncIterator[None]:
    """Checkpoint the SQLite database of `url` every `every` seconds while the block runs
    (nothing for PostgreSQL); a failure reported to `supervisor`, if any, and the loop started
    again after a backoff (without one, logged as a warning and tried again next time)."""
    path = database_file(url)
    if path is None:
        yield
        return
    stop = asyncio.Event()
    if supervisor is None:
        task = asyncio.create_task(_loop(path, every, stop, report=_warn))
    else:
        looping = supervisor.forever(
            lambda: _loop(path, every, stop, report=None), task="checkpoint", stop=stop
        )
        task = supervisor.spawn(looping, task="checkpoint")
    try:
        yield
    finally:
        stop.set()  # and let a checkpoint under way finish: its thread holds the connection
        await task


async def _loop(
    path: Path, every: float, stop: asyncio.Event, *, report: Callable[[sqlite3.Error], None] | None
) -> None:
    """Checkpoint every `every` s until `stop`; a failure given to `report`, or raised."""
    conn: sqlite3.Connection | None = None
    try:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=every)
                return
            try:
                # One call at a time, so the connection is never used by two threads at once.
                if conn is None:
                    conn = await asyncio.to_thread(_connect, path)
                await asyncio.to_thread(checkpoint, conn)
            except sqlite3.Error as exc:  # no file yet, locked, a disk error: try again later
                if report is None:
                    raise
                report(exc)
    finally:
        if conn is not None:
            conn.close()


def _warn(exc: sqlite3.Error) -> None:
    log.warning("WAL checkpoint failed", extra={"error": str(exc)})


def _connect(path: Path) -> sqlite3.Connection:
    """A connection of the checkpointer's own, for any of its threads (one at a time)."""
    # mode=rw: never create the file (a missing one is readyz's to report); as_uri() escapes
    # whatever the path holds.
    return sqlite3.connect(
        f"{path.resolve().as_uri()}?mode=rw",
        uri=True,
        timeout=0,
        isolation_level=None,
        check_same_thread=False,
    )
