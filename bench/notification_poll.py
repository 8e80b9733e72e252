"""What the notifications deliverer's poll costs (docs/notifications.md).

    .venv/bin/python bench/notification_poll.py sqlite+aiosqlite:////tmp/poll.db
    .venv/bin/python bench/notification_poll.py postgresql+asyncpg://postgres@127.0.0.1/DB

Migrates the database, then times 2000 reads of the soonest pending notification's due time
(`outbox_claims.next_due` through `Transactions.read`, as the deliverer polls) and prints the
wall and CPU time of one, and the share of a core at two polls a second.
"""

from __future__ import annotations

import asyncio
import sys
import time

from service.storage import outbox_claims
from service.storage.database import migrate
from service.storage.transactions import Transactions

READS = 2000


async def measure(url: str) -> None:
    t = Transactions.open(url)
    for _ in range(50):  # warm: connections, compiled statements
        await t.read(outbox_claims.next_due)
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(READS):
        await t.read(outbox_claims.next_due)
    cpu, wall = (time.process_time() - cpu) / READS, (time.perf_counter() - wall) / READS
    print(
        f"{t.dialect}: {wall * 1e6:.0f} µs wall, {cpu * 1e6:.0f} µs CPU a poll; "
        f"at 2 a second {cpu * 2 * 100:.3f} % of a core"
    )
    await t.close()


if __name__ == "__main__":
    migrate(sys.argv[1])
    asyncio.run(measure(sys.argv[1]))
