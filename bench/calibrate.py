"""How fast this machine is today, so that figures from different machines (or days) compare.

Two numbers, printed in the header of every run:
- CPU: a fixed pure-Python workload on one core (no service code, so a change to the service
  does not move it): dicts built, dumped to JSON, datetimes formatted, as an event's answer is.
- SQLite: 35-row transactions a second into the service's own `message` table and indexes
  (a migrated file), one `BEGIN IMMEDIATE` … `COMMIT` each, WAL, `synchronous=NORMAL`, through
  the plain `sqlite3` module: the kind of transaction issue 5's "~1,470 a second at best" is.
"""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import UTC, datetime, timedelta

import seed

ROWS = 35


def cpu_score(seconds: float = 2.0) -> float:
    """Rounds of the fixed workload a second, on one core."""
    start = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
    rounds, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        items = [
            {
                "id": f"msg_{i:08d}",
                "step": "serum",
                "kind": "aftercare",
                "seq": i,
                "send_at": (start + timedelta(hours=i)).isoformat(),
                "status": "scheduled",
            }
            for i in range(34)
        ]
        json.dumps({"messages": items})
        rounds += 1
    return rounds / (time.perf_counter() - began)


def sqlite_transactions(path: str, seconds: float = 3.0) -> float:
    """35-row transactions a second into the migrated SQLite file at `path`."""
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        sql = (
            f"INSERT INTO message ({', '.join(seed.MESSAGE_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(seed.MESSAGE_COLUMNS))})"
        )
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        done, began = 0, time.perf_counter()
        while time.perf_counter() - began < seconds:
            rows = [_row(done * ROWS + i, now) for i in range(ROWS)]
            con.execute("BEGIN IMMEDIATE")
            con.executemany(sql, rows)
            con.execute("COMMIT")
            done += 1
        return done / (time.perf_counter() - began)
    finally:
        con.close()


def _row(i: int, now: str) -> tuple[object, ...]:
    send_at = datetime(2026, 12, 1, tzinfo=UTC) + timedelta(minutes=i * 7919 % 40_000)
    due = send_at.strftime("%Y-%m-%d %H:%M:%S.%f")
    return (
        f"msg_cal_{i:010d}",
        seed.CLINIC,
        1,
        1,
        "serum",
        "aftercare",
        i,
        f"+1415555{i % 10_000:04d}",
        "en",
        "Apply the serum morning and evening." * 3,
        due,
        due,
        due,
        "scheduled",
        None,
        0,
        None,
        None,
        None,
        None,
        None,
        None,
        False,
        now,
    )
