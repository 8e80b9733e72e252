"""Rows inserted many to a statement, values as the driver takes them (no SQLAlchemy
processing per value): the history, the status callbacks kept and a plan's messages on SQLite.

A statement of its own costs SQLAlchemy a compile-cache lookup and an execution context; rows
in one multi-row INSERT (within SQLite's limit on parameters) cost it once. They run on the
writer's thread with the rest of the transaction, through `exec_driver_sql` (SQLAlchemy's
events see them).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from functools import lru_cache
from itertools import chain
from typing import Any

import sqlalchemy as sa

# The fewest parameters a statement may take: 32766 since SQLite 3.32, 999 before (a build
# may allow more).
VARIABLES = 32766 if sqlite3.sqlite_version_info >= (3, 32) else 999


def insert_rows(
    conn: sa.Connection, table: str, columns: tuple[str, ...], rows: Sequence[tuple[Any, ...]]
) -> None:
    """INSERT `rows` (values as the driver takes them) into `table`, many to a statement."""
    per = VARIABLES // len(columns)
    for start in range(0, len(rows), per):
        chunk = rows[start : start + per]
        conn.exec_driver_sql(_values(table, columns, len(chunk)), tuple(chain.from_iterable(chunk)))


@lru_cache(maxsize=128)
def _values(table: str, columns: tuple[str, ...], rows: int) -> str:
    """An INSERT of `rows` rows of `columns`, each value a `?`."""
    one = f"({', '.join('?' * len(columns))})"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([one] * rows)}"
