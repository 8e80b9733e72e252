"""One writer at a time across processes on one SQLite file (docs/workers.md).

SQLite lets one connection write at a time and makes the others wait in its busy handler,
which sleeps and looks again (1, 2, 5, 10, … up to 100 ms between looks): a claim waiting
behind another process's commit would sleep past the moment the file was free again, and a
writer taking its turns back to back can keep another waiting for as long as it writes.
`flock` on a file beside the database queues the writers in the kernel instead: the next one
wakes when the last lets go. Each process's writer thread takes it for a whole transaction,
after that process's writer gate has chosen what goes next; with one process it is never
contended and costs two system calls a transaction.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class WriterLock:
    """An exclusive `flock` on `<database>-writer`, held around each write transaction."""

    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + "-writer")
        self._fd: int | None = None  # opened by the first write, as the database file is

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold the lock (waiting for another process to let go) while the block runs. A
        folder that is not there fails here, as the database's own open would."""
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Let the file go (the lock with it)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
