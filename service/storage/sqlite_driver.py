"""SQLite statements in one thread hand-off each.

aiosqlite runs every call on the connection's own thread, and SQLAlchemy's adapter makes four
calls per statement (open a cursor, execute, fetch the rows, close it): four trips through a
queue to that thread and back through the event loop, where each trip waits for the GIL. This
cursor does all four in the connection's thread at once, queued on aiosqlite's `_tx` exactly
as SQLAlchemy's own adapter queues its `isolation_level` change. Everything else (connection,
transactions, errors, the dialect) is SQLAlchemy's aiosqlite support, unchanged.

Fewer trips still: a transaction's BEGIN and the inserts whose result nobody reads (history
rows, a plan's messages: `insert_rows`) wait for the transaction's next statement or its commit
and go in that trip, and a commit or rollback with no transaction open makes none. Statements
that go ahead this way do not pass SQLAlchemy's events (nor its echo).
"""

from __future__ import annotations

import asyncio
import collections
import sqlite3
from collections.abc import Callable, Sequence
from functools import lru_cache, partial
from itertools import chain
from typing import Any, cast

import aiosqlite
from sqlalchemy import Connection
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

# description, rowcount, lastrowid, rows, and whether a transaction is open after it
Outcome = tuple[Any, int, int | None, list[Any], bool]


Ahead = list[tuple[str, Any]]  # statements to run first, in order: (SQL, parameters)


def _run_ahead(conn: sqlite3.Connection, ahead: Ahead) -> None:
    for operation, parameters in ahead:
        conn.execute(operation, parameters)


def _run(
    conn: sqlite3.Connection, operation: str, parameters: Any, many: bool, ahead: Ahead
) -> Outcome:
    """A statement, start to finish, on the connection's thread (after `ahead`)."""
    _run_ahead(conn, ahead)
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        else:
            cursor.execute(operation, () if parameters is None else parameters)
        rows = cursor.fetchall() if cursor.description else []
        return cursor.description, cursor.rowcount, cursor.lastrowid, rows, conn.in_transaction
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
        adapted = cast(OneTripConnection, self._adapt_connection)
        ahead = adapted.take_ahead()
        try:
            outcome: Outcome = adapted.trip(
                partial(_run, self._connection._conn, operation, parameters, many, ahead)
            )
        except BaseException:
            adapted.in_transaction = True  # not known: let the rollback reach SQLite
            raise
        self._description, self._rowcount, self._lastrowid, rows, adapted.in_transaction = outcome
        self._rows = collections.deque(rows)


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    """SQLAlchemy's aiosqlite connection with `OneTripCursor`s. A transaction's BEGIN
    (`begin_with_next_statement`) and the inserts nobody reads back (`insert_rows`) wait for
    the transaction's next statement, or its commit, and go to SQLite in that trip."""

    __slots__ = ("deferred", "in_transaction", "pending_begin")
    _cursor_cls = OneTripCursor  # type: ignore[assignment]

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self.pending_begin: str | None = None
        self.deferred: Ahead = []
        # Whether SQLite had a transaction open after this connection's last trip. Only these
        # trips open one (the connection is in autocommit mode), so a commit or rollback with
        # none open, as the pool's reset after every commit is, need not make a trip at all.
        self.in_transaction = True  # not known yet

    def take_ahead(self) -> Ahead:
        """What must run before the next statement, in order; nothing waits any more."""
        ahead: Ahead = [] if self.pending_begin is None else [(self.pending_begin, ())]
        ahead += self.deferred
        self.pending_begin, self.deferred = None, []
        return ahead

    def trip(self, call: Callable[[], Any]) -> Any:
        """Run `call` on the connection's thread; its result (from inside a greenlet)."""
        driver = self._connection
        future = asyncio.get_running_loop().create_future()
        driver._tx.put_nowait((future, call))
        try:
            return await_(future)
        except Exception as error:
            self._handle_exception(error)

    def commit(self) -> None:
        if self.deferred:
            self._end(partial(_commit_after, self.take_ahead()))
        else:
            self.pending_begin = None  # a transaction that ran no statement: nothing to end
            if self.in_transaction:
                self._end(sqlite3.Connection.commit)

    def rollback(self) -> None:
        self.pending_begin, self.deferred = None, []
        if self.in_transaction:
            self._end(sqlite3.Connection.rollback)

    def _end(self, end: Callable[[sqlite3.Connection], Any]) -> None:
        conn = self._connection._connection
        if conn is None:  # closed
            return
        self.in_transaction = True  # not known, should the trip fail
        self.trip(partial(end, conn))
        self.in_transaction = False


def _commit_after(ahead: Ahead, conn: sqlite3.Connection) -> None:
    try:
        _run_ahead(conn, ahead)
    except BaseException:
        conn.rollback()  # the commit fails, and the transaction with it, as SQLite's own would
        raise
    conn.commit()


def begin_with_next_statement(dbapi_connection: Any, begin: str) -> None:
    """Have SQLite run `begin` (a BEGIN statement) just before the connection's next statement,
    in that statement's trip to the connection's thread. As its own statement, a BEGIN cost
    what any statement costs SQLAlchemy in the event loop (README, benchmarks), and every claim
    and every outcome is a transaction."""
    dbapi_connection.pending_begin = begin


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


def insert_rows(
    conn: Connection, table: str, columns: tuple[str, ...], rows: Sequence[tuple[Any, ...]]
) -> None:
    """INSERT `rows` (values as the driver takes them) into `table`, many to a statement, with
    the transaction's next statement or its commit (an error shows there, failing the
    transaction as it would have here).

    Many to a statement: the driver lets go of the GIL around each step of a statement and
    then waits to take it back from the event loop, which holds it for up to a switch
    interval (5 ms), so an executemany of a few hundred rows made this thread wait a few
    hundred times. With the next statement: as one of its own, each insert cost what any
    statement costs SQLAlchemy in the event loop; a claim and an outcome each
    write history."""
    adapted = cast(OneTripConnection, conn.connection.dbapi_connection)
    per = VARIABLES // len(columns)
    for start in range(0, len(rows), per):
        chunk = rows[start : start + per]
        adapted.deferred.append(
            (_values(table, columns, len(chunk)), tuple(chain.from_iterable(chunk)))
        )


@lru_cache(maxsize=128)
def _values(table: str, columns: tuple[str, ...], rows: int) -> str:
    """An INSERT of `rows` rows of `columns`, each value a `?`."""
    one = f"({', '.join('?' * len(columns))})"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([one] * rows)}"
