"""Issue 14's measure-first, kept: one small write transaction in three shapes, on SQLite.

`python bench/sqlite_shapes.py` runs 2,000 transactions shaped like a claim or an outcome (a
statement whose rows are read, one history row, the commit) through:

- `service`: the service's own `Transactions.write` (a sync pysqlite engine, the whole
  transaction one store function on the writer's one thread, behind the writer gate);
- `aiosqlite`: SQLAlchemy's stock aiosqlite dialect, BEGIN IMMEDIATE from the documented
  `begin` event (four trips to SQLite's thread a statement; skipped without aiosqlite);
- `thread`: the bare shape `Transactions` is built on: a sync pysqlite engine and a
  one-thread executor, no gate, no session.

The shape the service had before (aiosqlite with one-trip cursors on its private parts) is
measured by this script in a tree before issue 14's change (f.e. main at 55cf506).

It prints, per transaction, the CPU of the event loop's thread (what a due message waits
behind), the CPU of the whole process and the wall time, three rounds in turn; and how late a
1 ms timer on the loop woke meanwhile (p99 and max): what the event loop waited for the GIL
while another thread held it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service.storage.rows import insert_rows
from service.storage.transactions import Transactions

COUNT, ROUNDS = 2000, 3
SELECT = sa.text("SELECT id FROM t WHERE id = :i")
HISTORY = sa.text("INSERT INTO h (m, at) VALUES (:m, :at)")


def _immediate(sync_engine: sa.Engine) -> None:
    @event.listens_for(sync_engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")

    @event.listens_for(sync_engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


async def service(path: str) -> Callable[[int], Awaitable[None]]:
    transactions = Transactions.open(f"sqlite+aiosqlite:///{path}")

    def transaction(s: Any, i: int) -> None:
        conn = s.connection()
        conn.execute(SELECT, {"i": i}).all()
        insert_rows(conn, "h", ("m", "at"), [(f"msg{i}", "2026-11-30 00:00")])

    async def run(i: int) -> None:
        await transactions.write(partial(transaction, i=i), urgent=True)

    return run


async def stock(path: str) -> Callable[[int], Awaitable[None]]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}", pool_size=1, max_overflow=0)
    _immediate(engine.sync_engine)

    async def run(i: int) -> None:
        async with engine.begin() as conn:
            await conn.execute(SELECT, {"i": i})
            await conn.execute(HISTORY, {"m": f"msg{i}", "at": "2026-11-30 00:00"})

    return run


async def thread(path: str) -> Callable[[int], Awaitable[None]]:
    engine = sa.create_engine(f"sqlite:///{path}", pool_size=1, max_overflow=0)
    _immediate(engine)
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
    loop = asyncio.get_running_loop()

    def transaction(i: int) -> None:
        with engine.begin() as conn:
            conn.execute(SELECT, {"i": i}).all()
            conn.execute(HISTORY, {"m": f"msg{i}", "at": "2026-11-30 00:00"})

    async def run(i: int) -> None:
        await loop.run_in_executor(writer, transaction, i)

    return run


async def ticker(late: list[float], stop: asyncio.Event) -> None:
    """Sleep 1 ms at a time; note how late each wake-up was."""
    while not stop.is_set():
        asked = time.perf_counter()
        await asyncio.sleep(0.001)
        late.append(time.perf_counter() - asked - 0.001)


async def measure(
    name: str, make: Callable[[str], Awaitable[Callable[[int], Awaitable[None]]]], path: str
) -> None:
    run = await make(path)
    for i in range(200):
        await run(i)
    late: list[float] = []
    stop = asyncio.Event()
    ticks = asyncio.create_task(ticker(late, stop))
    loop_cpu, cpu, wall = time.thread_time(), time.process_time(), time.perf_counter()
    each = COUNT // 8
    await asyncio.gather(*(_writes(run, start, each) for start in range(0, COUNT, each)))
    loop_cpu, cpu = time.thread_time() - loop_cpu, time.process_time() - cpu
    wall = time.perf_counter() - wall
    stop.set()
    await ticks
    late.sort()
    print(
        f"  {name:9} loop {loop_cpu / COUNT * 1e6:4.0f} µs, process {cpu / COUNT * 1e6:4.0f}"
        f" µs, wall {wall / COUNT * 1e6:4.0f} µs a transaction; 1 ms timer late p99 "
        f"{late[int(len(late) * 0.99)] * 1e3:.2f} ms, max {late[-1] * 1e3:.2f} ms"
    )


async def _writes(run: Callable[[int], Awaitable[None]], start: int, count: int) -> None:
    """`count` transactions one after another (eight of these run side by side)."""
    for i in range(start, start + count):
        await run(i)


async def main() -> None:
    with tempfile.TemporaryDirectory() as work:
        path = f"{work}/shapes.db"
        setup = sa.create_engine(f"sqlite:///{path}")
        with setup.begin() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
            conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
            conn.exec_driver_sql("CREATE TABLE h (id INTEGER PRIMARY KEY, m TEXT, at TEXT)")
        setup.dispose()
        for round_ in range(ROUNDS):
            print(f"round {round_ + 1}")
            for name, make in (("service", service), ("aiosqlite", stock), ("thread", thread)):
                if name != "aiosqlite" or importlib.util.find_spec("aiosqlite"):
                    await measure(name, make, path)


if __name__ == "__main__":
    asyncio.run(main())
