"""CPU and wall time of one small SQLite write transaction through the service's writer.

`python bench/transaction_cost.py` runs 2,000 transactions shaped like a claim or an outcome,
each one store function run by `Transactions.write`: one statement whose rows are read and one
history row (`rows.insert_rows`), then the commit. To compare trees, run each tree's own copy
of this script in turn, a few times over, for what a transaction costs the process.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from sqlmodel import Session  # noqa: E402

from service.storage.rows import insert_rows  # noqa: E402
from service.storage.transactions import Transactions  # noqa: E402

COUNT = 2000


def _create(s: Session) -> None:
    conn = s.connection()
    conn.execute(sa.text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
    conn.execute(sa.text("CREATE TABLE h (id INTEGER PRIMARY KEY, m TEXT, at TEXT)"))


def _transaction(s: Session, i: int) -> None:
    conn = s.connection()
    conn.execute(sa.text("SELECT id FROM t WHERE id = :i"), {"i": i}).all()
    insert_rows(conn, "h", ("m", "at"), [(f"msg{i}", "2026-11-30 00:00")])


async def main() -> None:
    with tempfile.TemporaryDirectory() as work:
        transactions = Transactions.open(f"sqlite+aiosqlite:///{work}/cost.db")
        await transactions.write(_create)
        cpu, wall = time.process_time(), time.perf_counter()
        for i in range(COUNT):
            await transactions.write(partial(_transaction, i=i), urgent=True)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        await transactions.close()
    print(
        f"{ROOT}: {cpu / COUNT * 1e6:.0f} µs CPU, {wall / COUNT * 1e6:.0f} µs wall per transaction"
    )


if __name__ == "__main__":
    asyncio.run(main())
