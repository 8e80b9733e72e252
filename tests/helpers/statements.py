"""The SQL statements a writer runs, seen from the side (SQLAlchemy's cursor events)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from service.storage.transactions import Transactions


@contextmanager
def statements(transactions: Transactions) -> Iterator[list[str]]:
    """The SQL statements the writer of `transactions` runs inside the block."""
    engine = transactions.engine
    seen: list[str] = []

    def hook(*args: Any) -> None:
        seen.append(args[2])

    event.listen(engine, "before_cursor_execute", hook)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", hook)
