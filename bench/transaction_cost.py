"""CPU and wall time of one small SQLite write transaction through the service's engine.

`python bench/transaction_cost.py [ROOT]` imports `service` from ROOT (default: this tree) and
runs 2,000 transactions shaped like a claim or an outcome: one statement whose rows are read
and one history row (`insert_rows`), then the commit. Run it for two trees in turn, a few times
over, to compare what a transaction costs the event loop.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent)
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from service.storage.database import create_engine  # noqa: E402
from service.storage.sqlite_driver import insert_rows  # noqa: E402

COUNT = 2000


async def main() -> None:
    with tempfile.TemporaryDirectory() as work:
        engine = create_engine(f"sqlite+aiosqlite:///{work}/cost.db")
        async with engine.begin() as conn:
            await conn.execute(sa.text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
            await conn.execute(sa.text("CREATE TABLE h (id INTEGER PRIMARY KEY, m TEXT, at TEXT)"))
        cpu, wall = time.process_time(), time.perf_counter()
        for i in range(COUNT):
            async with engine.begin() as conn:
                await conn.execute(sa.text("SELECT id FROM t WHERE id = :i"), {"i": i})
                await insert_rows(conn, "h", ("m", "at"), [(f"msg{i}", "2026-11-30 00:00")])
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        await engine.dispose()
    print(
        f"{ROOT}: {cpu / COUNT * 1e6:.0f} µs CPU, {wall / COUNT * 1e6:.0f} µs wall per transaction"
    )


if __name__ == "__main__":
    asyncio.run(main())
