"""What `[retention]`'s pruner costs the SQLite writer, and what sends feel meanwhile.

`python bench/retention_cost.py [--old 100000] [--batch 200] [--sends 1000]` seeds, in a
temporary SQLite file, `--old` delivered messages 500 days old (10 to a patient and treatment,
each with two history rows and a kept status callback), a reply and an event per treatment as
old, and messages due now. It takes `--sends` due messages through the dispatcher one at a
time (a claim of one, a send to a provider that accepts at once, the outcome) alone, then
keeps sending them one at a time while one pruning pass (`Pruner.prune`, the default policy)
runs beside them, with WAL checkpoints on a thread as the service has them. It prints each
table's batches (how many, and their time in the writer from BEGIN to the end of COMMIT), the
pass's wall time, a send's wall time (claim to outcome) alone and during the pass, and the
file's size and free pages before and after, and after as many new messages again.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import seed  # noqa: E402
from dispatch_cost import Accepting, Now, settings  # noqa: E402
from sqlalchemy import event  # noqa: E402
from sqlmodel import Session  # noqa: E402

from service.config import RetentionSettings  # noqa: E402
from service.delivery.dispatch import Dispatcher  # noqa: E402
from service.storage.checkpoint import checkpointing  # noqa: E402
from service.storage.database import migrate  # noqa: E402
from service.storage.pruning import Pruner  # noqa: E402
from service.storage.retention import RULES, Rule  # noqa: E402
from service.storage.transactions import Transactions  # noqa: E402

PER_TREATMENT = 10
DUE_DURING = 50_000  # due messages enough to send one after another for the whole pass
BATCH_TIMES: defaultdict[str, list[float]] = defaultdict(list)


class Timed:
    """A rule whose every batch is timed in the writer's thread, from BEGIN to COMMIT."""

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.name, self.period = rule.name, rule.period

    def prune(self, s: Session, *, before: datetime, limit: int) -> int:
        s.info["pruning"] = (self.name, time.perf_counter())  # BEGIN is at the first statement
        return self.rule.prune(s, before=before, limit=limit)


@event.listens_for(Session, "after_commit")
def _committed(s: Session) -> None:
    timed = s.info.pop("pruning", None)
    if timed is not None:
        BATCH_TIMES[timed[0]].append(time.perf_counter() - timed[1])


def _seed(path: str, old: int, due: int) -> None:
    now = time.time()
    then = now - 500 * 86400
    seed.seed_sqlite(
        path,
        seed.Batch(
            label="old",
            send_at=[then + i for i in range(old)],
            phone=lambda i: f"+1415{i:07d}",
            body=lambda i: f"Hi Ana, time for your serum #{i}.",
            per_treatment=PER_TREATMENT,
        ),
    )
    seed.seed_sqlite(
        path,
        seed.Batch(
            label="due",
            send_at=[now - 5 + i * 1e-4 for i in range(due)],
            phone=lambda i: f"+1628{i:07d}",
            body=lambda i: f"[due#{i}] serum time",
            per_treatment=1,
        ),
    )
    _age(path, then)


def _age(path: str, then: float) -> None:
    """The old batch delivered long ago: history, callbacks, parents, replies and events."""
    stamp = datetime.fromtimestamp(then, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("BEGIN IMMEDIATE")
    old = "id LIKE 'msg_old_%'"
    con.execute(f"UPDATE message SET status='delivered', provider_id='SM'||id WHERE {old}")
    con.execute("UPDATE message_history SET at=? WHERE message_id LIKE 'msg_old_%'", (stamp,))
    con.execute(
        "INSERT INTO message_history (message_id, at, status) "
        f"SELECT id, updated_at, 'delivered' FROM message WHERE {old}"
    )
    con.execute(
        "INSERT INTO provider_status (provider_id, status, received_at) "
        f"SELECT provider_id, 'delivered', due_at FROM message WHERE {old}"
    )
    con.execute(f"UPDATE message SET updated_at=due_at WHERE {old}")
    for table, column in (("patient", "updated_at"), ("treatment", "created_at")):
        con.execute(f"UPDATE {table} SET {column}=? WHERE external_id LIKE 'old-%'", (stamp,))
    con.execute(
        "INSERT INTO inbound (clinic_id, phone, body, received_at) "
        "SELECT clinic_id, phone, 'my skin is fine', ? FROM patient WHERE external_id LIKE 'old-%'",
        (stamp,),
    )
    con.execute(
        "INSERT INTO event (clinic_id, webhook_id, body_sha256, type, status_code, response,"
        " received_at) SELECT clinic_id, 'wh_'||external_id, '', 'treatment.completed', 202,"
        " '{}', ? FROM treatment WHERE external_id LIKE 'old-%'",
        (stamp,),
    )
    con.execute("COMMIT")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()


def _refill(path: str, count: int) -> None:
    """As many messages as were pruned, planned now (they fill the pages the pass freed)."""
    seed.seed_sqlite(
        path,
        seed.Batch(
            label="new",
            send_at=[time.time() + 3600 + i for i in range(count)],
            phone=lambda i: f"+1415{i:07d}",
            body=lambda i: f"Hi Ana, time for your serum #{i}.",
            per_treatment=PER_TREATMENT,
        ),
    )


async def _sends(dispatcher: Dispatcher, count: int) -> list[float]:
    """`count` due messages, one at a time: each one's wall time from claim to outcome."""
    times = []
    for _ in range(count):
        started = time.perf_counter()
        [claimed] = await dispatcher.claim(limit=1)
        await dispatcher._send(claimed)
        times.append(time.perf_counter() - started)
    return times


def _file(path: str) -> str:
    con = sqlite3.connect(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages, free = (
        con.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_count", "freelist_count")
    )
    con.close()
    size = Path(path).stat().st_size / 1e6
    return f"{size:.1f} MB, {pages} pages of which {free} free"


def _ms(values: list[float], q: float) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    return f"{ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3:.2f}"


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as work:
        path = f"{work}/retention.db"
        url = f"sqlite+aiosqlite:///{path}"
        await asyncio.to_thread(migrate, url)
        await asyncio.to_thread(_seed, path, args.old, args.sends + DUE_DURING)
        print(f"seeded: {_file(path)}")
        async with checkpointing(url):  # as the service runs: checkpoints off the writer's path
            await _measure(args, url)
        print(f"after the pass: {_file(path)}")
        await asyncio.to_thread(_refill, path, args.old)
        print(f"after as many new messages again: {_file(path)}")


async def _measure(args: argparse.Namespace, url: str) -> None:
    transactions = Transactions.open(url)
    dispatcher = Dispatcher(
        settings=settings(url), transactions=transactions, sender=Accepting(),
        clock=Now(), instance="bench",
    )  # fmt: skip
    alone = await _sends(dispatcher, args.sends)
    pruner = Pruner(
        retention=RetentionSettings(), transactions=transactions, clock=Now(),
        batch=args.batch, rules=[Timed(rule) for rule in RULES],
    )  # fmt: skip
    started = time.perf_counter()
    pass_ = asyncio.ensure_future(pruner.prune())
    during: list[float] = []
    while not pass_.done():
        during += await _sends(dispatcher, 1)
    pruned = pass_.result()
    wall = time.perf_counter() - started
    await transactions.close()
    _report(args, pruned, wall, alone, during)


def _report(
    args: argparse.Namespace,
    pruned: dict[str, int],
    wall: float,
    alone: list[float],
    during: list[float],
) -> None:
    print(f"pass: {sum(pruned.values())} rows in {wall:.2f} s wall, batch {args.batch}")
    for table, times in BATCH_TIMES.items():
        print(
            f"  {table:12} {pruned.get(table, 0):7} rows, {len(times):4} batches: "
            f"median {_ms(times, 0.5)} ms, p99 {_ms(times, 0.99)} ms, max {_ms(times, 1)} ms "
            f"in the writer; {sum(times):.2f} s in all"
        )
    for label, times in (("alone", alone), ("during the pass", during)):
        print(
            f"{len(times)} sends {label:16} median {_ms(times, 0.5)} ms, "
            f"p99 {_ms(times, 0.99)} ms, max {_ms(times, 1)} ms "
            f"(mean {statistics.mean(times) * 1e3:.2f} ms)"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--sends", type=int, default=1000)
    asyncio.run(main(parser.parse_args()))
