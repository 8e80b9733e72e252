"""CPU and wall time of one message through the dispatcher on SQLite, without HTTP.

`python bench/dispatch_cost.py [--statements] [--merge-window 30m] [--twilio]` seeds due
messages (each its number's first, so each carries the footer, as in the steady run), and takes
2,000 of them one at a time the way a steady trickle does: a claim of one, the send (a sender
that accepts at once, so no HTTP; with `--twilio`, the real TwilioSender posting to
bench/fake_twilio.py in a process of its own, answering at once), its outcome. It prints the
CPU of this process per message;
`--statements` adds the time each SQL statement spends in the writer's thread (SQLAlchemy's
cursor events); `--merge-window` sets `sms.merge_window` (each message its own patient's:
nothing merges, so what it measures is the cost of looking, docs/merging.md). To compare
trees, run each tree's own copy of this script in turn, a few times over: the machine's speed
drifts.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import seed  # noqa: E402

from service.config import Settings  # noqa: E402
from service.delivery.dispatch import Dispatcher  # noqa: E402
from service.delivery.sms.base import Accepted, OutgoingSms, SmsSender  # noqa: E402
from service.delivery.sms.twilio import TwilioSender  # noqa: E402
from service.storage.database import migrate  # noqa: E402
from service.storage.transactions import Transactions  # noqa: E402

COUNT, WARMUP = 2000, 100
SPENT: collections.defaultdict[str, float] = collections.defaultdict(float)
RUNS: collections.Counter[str] = collections.Counter()


def _time_statements(engine: sa.Engine) -> None:
    """Add each statement's time in the writer's thread to SPENT (its first 70 characters)."""

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn: Any, _cursor: Any, _sql: str, *_: Any) -> None:
        conn.info["started"] = time.perf_counter()

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        SPENT[sql[:70]] += time.perf_counter() - conn.info.pop("started")
        RUNS[sql[:70]] += 1


class Accepting:
    """A provider that accepts every message at once."""

    def __init__(self) -> None:
        self.sent = 0

    async def send(self, sms: OutgoingSms) -> Accepted:
        self.sent += 1
        return Accepted(provider_id=f"SM{self.sent:032d}", status="queued")

    async def find(self, sms: OutgoingSms, *, since: datetime) -> Accepted | None:
        return None

    async def aclose(self) -> None:
        pass


@contextlib.contextmanager
def fake_twilio() -> Iterator[str]:
    """bench/fake_twilio.py on a free loopback port, answering creates at once; its base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = Path(__file__).resolve().parent / "fake_twilio.py"
    fake = subprocess.Popen([sys.executable, str(script), str(port), "--no-callbacks"])
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or fake.poll() is not None:
                    raise
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        fake.terminate()
        fake.wait()


def _sender(base_url: str | None) -> SmsSender:
    """The sender to measure: the real Twilio one when a fake's URL is given."""
    if base_url is None:
        return Accepting()
    return TwilioSender(
        account_sid="AC" + "0" * 32, auth_token="t", api_base_url=base_url, timeout=10
    )


class Now:
    def now(self) -> datetime:
        return datetime.now(UTC)


def settings(url: str) -> Settings:
    return Settings.model_validate(
        {
            "server": {"public_base_url": "http://127.0.0.1:8080"},
            "database": {"url": url},
            "sms": {"backend": "console", **_merge_window()},
            "clinics": {
                seed.CLINIC: {
                    "name": "Bench",
                    "timezone": "UTC",
                    "locale": "en",
                    "from_number": seed.FROM_NUMBER,
                    "webhook_secrets": ["whsec_" + "A" * 32],
                    "api_tokens": ["t" * 32],
                }
            },
            "protocols": {
                "one": {
                    "title": "One",
                    "steps": [
                        {"key": "now", "kind": "aftercare", "after": "1h", "text": {"en": "Hi."}}
                    ],
                }
            },
        }
    )


def _merge_window() -> dict[str, str]:
    """`--merge-window VALUE` as an [sms] setting (a tree from before merging ignores it)."""
    if "--merge-window" not in sys.argv:
        return {}
    return {"merge_window": sys.argv[sys.argv.index("--merge-window") + 1]}


async def main() -> None:
    with contextlib.ExitStack() as stack:
        base_url = stack.enter_context(fake_twilio()) if "--twilio" in sys.argv else None
        await _run(base_url)


async def _run(base_url: str | None) -> None:
    with tempfile.TemporaryDirectory() as work:
        url = f"sqlite+aiosqlite:///{work}/cost.db"
        await asyncio.to_thread(migrate, url)
        start = time.time() - 5  # all due, none expired
        seed.seed_sqlite(
            f"{work}/cost.db",
            seed.Batch(
                label="cost",
                send_at=[start + i * 1e-4 for i in range(COUNT + WARMUP)],
                phone=lambda i: f"+1415555{i:04d}",
                body=lambda i: f"[cost#{i}] serum time",
                per_treatment=1,
            ),
        )
        transactions = Transactions.open(url)
        if "--statements" in sys.argv:
            _time_statements(transactions.engine)
        sender = _sender(base_url)
        dispatcher = Dispatcher(
            settings=settings(url),
            transactions=transactions,
            sender=sender,
            clock=Now(),
            instance="cost",
        )
        for n in range(COUNT + WARMUP):
            if n == WARMUP:
                SPENT.clear()
                RUNS.clear()
                cpu, wall = time.process_time(), time.perf_counter()
            [claimed] = await dispatcher.claim(limit=1)
            await dispatcher._send(claimed)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        await sender.aclose()
        await transactions.close()
    _report(cpu, wall)


def _report(cpu: float, wall: float) -> None:
    """Per message: CPU and wall time, then each statement's time in the writer."""
    print(f"{ROOT}: {cpu / COUNT * 1e6:.0f} µs CPU, {wall / COUNT * 1e6:.0f} µs wall per message")
    for operation, spent in sorted(SPENT.items(), key=lambda item: -item[1]):
        runs = RUNS[operation]
        print(
            f"  {spent / runs * 1e6:5.0f} µs in the writer, {runs / COUNT:.2f} a message: "
            f"{' '.join(operation.split())}"
        )


if __name__ == "__main__":
    asyncio.run(main())
