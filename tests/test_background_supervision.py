"""Contract §14, "Nothing dies quietly": a background task's failure is logged once (masked) and
counted in aftercare_background_failures_total{task=...}; a loop that fails is started again
after a backoff; what the task was doing is not lost.

The real app (`create_app`) on a real SQLite file, with an SmsSender of the test's own whose
first send raises what no provider answer explains (our interface; Twilio is not involved).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from service.delivery.sms.base import Accepted, OutgoingSms
from service.delivery.timers import Timers
from service.observability.logs import JsonFormatter
from service.observability.metrics import Metrics
from service.observability.supervision import Supervisor
from service.storage.transactions import Transactions
from service.web.app import create_app
from tests.helpers.client import bearer
from tests.helpers.events import completed_event, encode, signed
from tests.helpers.prometheus import sample
from tests.processes import until_async
from tests.support import PHONE, QUICK, TOKEN, glow_in_utc, make_settings


class SurprisedSender:
    """Raises a RuntimeError quoting the number and the text on its first send (a bug, say);
    accepts every later one; finds nothing when asked to reconcile."""

    def __init__(self) -> None:
        self.accepted: list[OutgoingSms] = []
        self.raised = 0

    async def send(self, sms: OutgoingSms) -> Accepted:
        if not self.raised:
            self.raised += 1
            raise RuntimeError(f"unexpected answer for {sms.to}: {sms.body}")
        self.accepted.append(sms)
        return Accepted(f"SM{len(self.accepted):032d}", "queued")

    async def find(self, sms: OutgoingSms, *, since: datetime) -> Accepted | None:
        return None

    async def aclose(self) -> None:
        pass


@pytest.fixture
def lines() -> Any:
    """Every log record of the test, formatted as the service formats it (JSON, masked)."""
    captured: list[tuple[logging.LogRecord, str]] = []
    handler = logging.Handler(level=logging.DEBUG)
    handler.emit = lambda record: captured.append((record, JsonFormatter().format(record)))  # type: ignore[method-assign]
    root = logging.getLogger()
    root.addHandler(handler)
    yield captured
    root.removeHandler(handler)


class TestASendThatRaises:
    async def test_is_logged_once_masked_counted_and_the_message_still_goes_out(
        self, aiohttp_client: Any, db_path: Path, lines: list[tuple[logging.LogRecord, str]]
    ) -> None:
        """The send task raises: one ERROR line naming the task and the exception's type (no
        number, no text), the counter at 1, no "Task exception was never retrieved"; the claim
        is reconciled when its lease ends, found nowhere, and sent on the retry."""
        settings = make_settings(
            db_path,
            clinics={"glow": glow_in_utc()},
            protocols={"quick": QUICK},
            twilio={"request_timeout": "1s"},
            scheduler={"claim_lease": "2s", "retry_initial_delay": "1s", "poll_interval": "1s"},
        )
        sender = SurprisedSender()
        client = await aiohttp_client(create_app(settings, sender=sender))
        done = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
        raw = encode(completed_event(treatment={"protocol": "quick", "completed_at": done}))
        answer = await client.post("/v1/clinics/glow/events", data=raw, headers=signed(raw))
        assert answer.status == 202, await answer.text()
        treatment = (await answer.json())["treatment"]["id"]

        async def sent() -> bool:
            url = f"/v1/clinics/glow/treatments/{treatment}"
            found = await (await client.get(url, headers=bearer(TOKEN))).json()
            return [m["status"] for m in found["messages"]] == ["sent"]

        await until_async(sent, timeout=15)
        assert sender.raised == 1 and len(sender.accepted) == 1
        gc.collect()  # asyncio's complaint comes when an unretrieved task is collected
        failed = [line for record, line in lines if record.getMessage() == "background task failed"]
        assert len(failed) == 1 and '"task": "send"' in failed[0]
        assert '"error": "RuntimeError"' in failed[0]
        everything = "\n".join(line for _, line in lines)
        assert PHONE not in everything and PHONE[-7:] not in failed[0]
        assert "first note" not in everything
        assert "never retrieved" not in everything
        metrics = await (await client.get("/metrics")).text()
        assert sample(metrics, "aftercare_background_failures_total", task="send") == 1.0


class TestLoops:
    async def test_a_periodic_job_that_raises_runs_again_after_a_backoff(
        self, db_path: Path, lines: list[tuple[logging.LogRecord, str]]
    ) -> None:
        """A job every 0.1 s that fails twice: each failure logged and counted, the job sits
        out 1 s then 2 s (a few runs, not thirty), then runs again and goes on running."""
        metrics = Metrics()
        settings = make_settings(db_path).scheduler
        transactions = Transactions.open(f"sqlite+aiosqlite:///{db_path}")
        runs: list[float] = []

        async def job() -> None:
            runs.append(time.monotonic())
            if len(runs) <= 2:
                raise ValueError("a bug in a sweep")

        async def nothing(*_: Any) -> None:
            pass

        timers = Timers(
            settings=settings,
            transactions=transactions,
            clock=_Clock(),
            dispatch_due=nothing,
            recover=nothing,
            supervisor=Supervisor(metrics),
        )
        timers.every(job, seconds=0.1, task="test_sweep")
        timers.start()
        try:
            deadline = time.monotonic() + 10
            while len(runs) < 5:
                assert time.monotonic() < deadline, runs
                await asyncio.sleep(0.05)
        finally:
            await timers.stop(timeout=5)
            await transactions.close()
        assert runs[1] - runs[0] >= 0.9 and runs[2] - runs[1] >= 1.9
        assert runs[4] - runs[2] < 1.0  # running every 0.1 s again
        scrape = metrics.render().decode()
        assert sample(scrape, "aftercare_background_failures_total", task="test_sweep") == 2.0
        failed = [r for r, _ in lines if r.getMessage() == "background task failed"]
        assert [getattr(r, "task", None) for r in failed] == ["test_sweep", "test_sweep"]

    async def test_a_job_running_at_stop_finishes_and_nothing_is_logged_as_an_error(
        self, db_path: Path, lines: list[tuple[logging.LogRecord, str]]
    ) -> None:
        """Stopping while a periodic job runs (the pruner's first pass at start, say): the
        job's work finishes, and the scheduler's cancellation of its wrapper is no error."""
        transactions = Transactions.open(f"sqlite+aiosqlite:///{db_path}")
        started, finished = asyncio.Event(), asyncio.Event()

        async def job() -> None:
            started.set()
            await asyncio.sleep(0.3)
            finished.set()

        async def nothing(*_: Any) -> None:
            pass

        timers = Timers(
            settings=make_settings(db_path).scheduler,
            transactions=transactions,
            clock=_Clock(),
            dispatch_due=nothing,
            recover=nothing,
            supervisor=Supervisor(Metrics()),
        )
        timers.every(job, seconds=60, task="slow_sweep")
        timers.start()
        try:
            await asyncio.wait_for(started.wait(), timeout=5)
        finally:
            await timers.stop(timeout=5)
            await transactions.close()
        await asyncio.sleep(0.05)  # the scheduler logs what its cancelled jobs raised
        assert finished.is_set()
        assert [line for r, line in lines if r.levelno >= logging.ERROR] == []

    async def test_a_loop_that_raises_is_started_again_and_stops_when_asked(self) -> None:
        """`Supervisor.forever`: a loop that raises is started again after the backoff (1 s);
        a stop during a backoff ends it at once."""
        metrics = Metrics()
        supervisor, stop = Supervisor(metrics), asyncio.Event()
        starts: list[float] = []

        async def loop() -> None:
            starts.append(time.monotonic())
            raise OSError("the database went away")

        running = supervisor.spawn(supervisor.forever(loop, task="test_loop", stop=stop), task="x")
        while len(starts) < 2:
            await asyncio.sleep(0.05)
        assert 0.9 <= starts[1] - starts[0] < 1.5
        stop.set()
        async with asyncio.timeout(1):
            await running
        scrape = metrics.render().decode()
        assert sample(scrape, "aftercare_background_failures_total", task="test_loop") == 2.0


class _Clock:
    def now(self) -> datetime:
        return datetime.now(UTC)
