"""SQLite statements in one thread hand-off each.

aiosqlite runs every call on the connection's own thread, and SQLAlchemy's adapter makes four
calls per statement (open a cursor, execute, fetch the rows, close it): four trips through a
queue to that thread and back through the event loop, where each trip waits for the GIL. This
cursor does all four in the connection's thread at once, queued on aiosqlite's `_tx` exactly
as SQLAlchemy's own adapter queues its `isolation_level` change. Everything else (connection,
transactions, errors, the dialect) is SQLAlchemy's aiosqlite support, unchanged.
"""

from __future__ import annotations

import asyncio
import collections
import sqlite3
from collections.abc import Sequence
from functools import lru_cache, partial
from itertools import chain
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

Outcome = tuple[Any, int, int | None, list[Any]]


def _run(conn: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> Outcome:
    """A statement, start to finish, on the connection's thread."""
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        else:
            cursor.execute(operation, () if parameters is None else parameters)
        rows = cursor.fetchall() if cursor.description else []
        return cursor.description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A client-side cursor whose every statement is one trip to the connection's thread."""

    __slots__ = ("_description", "_lastrowid", "_rowcount")
    _awaitable_cursor_close = False

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]  # nothing to open or close
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]

    @property
    def arraysize(self) -> int:
        return 1

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        pass

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        self._call(operation, parameters, many=False)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        self._call(operation, seq_of_parameters, many=True)

    def _call(self, operation: str, parameters: Any, *, many: bool) -> None:
        driver = self._connection
        future = asyncio.get_running_loop().create_future()
        driver._tx.put_nowait((future, partial(_run, driver._conn, operation, parameters, many)))
        try:
            outcome: Outcome = await_(future)
        except Exception as error:
            self._adapt_connection._handle_exception(error)
        self._description, self._rowcount, self._lastrowid, rows = outcome
        self._rows = collections.deque(rows)


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = OneTripCursor  # type: ignore[assignment]


class OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """aiosqlite as SQLAlchemy adapts it, with `OneTripCursor`s."""

    def connect(self, *arg: Any, **kw: Any) -> OneTripConnection:
        connection = self.aiosqlite.connect(*arg, **kw)
        connection._thread.daemon = True
        return OneTripConnection(self, await_(connection))


def dbapi() -> OneTripDBAPI:
    """The DBAPI module to hand `create_async_engine(..., module=...)` for SQLite."""
    return OneTripDBAPI(aiosqlite, sqlite3)


# The fewest parameters a statement may take: 32766 since SQLite 3.32, 999 before (a build
# may allow more).
VARIABLES = 32766 if sqlite3.sqlite_version_info >= (3, 32) else 999


async def insert_rows(conn: AsyncConnection, table: str, columns: tuple[str, ...],
                      rows: Sequence[tuple[Any, ...]]) -> None:
    """INSERT `rows` (values as the driver takes them) into `table`, many to a statement.

    The driver lets go of the GIL around each step of a statement and then waits to take it
    back from the event loop, which holds it for up to a switch interval (5 ms): an
    executemany of a few hundred rows made this thread wait a few hundred times."""
    per = VARIABLES // len(columns)
    for start in range(0, len(rows), per):
        chunk = rows[start:start + per]
        await conn.exec_driver_sql(_values(table, columns, len(chunk)),
                                   tuple(chain.from_iterable(chunk)))


@lru_cache(maxsize=128)
def _values(table: str, columns: tuple[str, ...], rows: int) -> str:
    """An INSERT of `rows` rows of `columns`, each value a `?`."""
    one = f"({', '.join('?' * len(columns))})"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([one] * rows)}"
