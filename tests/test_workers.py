"""`serve --workers N`: a supervisor and N workers on one port and one database (docs/workers.md).

The real command in a subprocess, the tests' fake Twilio in another, posting its status
callbacks back. A burst is sent exactly once by two workers on one SQLite file; a worker killed
with SIGKILL is replaced and nothing is lost; `/metrics` counts both workers' sends whichever
answers; SIGTERM stops them all; a worker whose supervisor is gone stops by itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, TCPConnector

from tests.fakes.twilio_process import fake_twilio_process
from tests.helpers.ports import free_port
from tests.processes import Service, config_text, fake_state, until_async

STEPS = 3  # notes of each plan, 1 s apart
PLANS = 20  # patients, each with a number of their own: each second 20 notes fall due at once


@asynccontextmanager
async def two_workers(
    tmp_path: Path, database: str
) -> AsyncIterator[tuple[Service, str, ClientSession]]:
    """`serve --workers 2` on `database`, against the fake Twilio (callbacks on)."""
    async with fake_twilio_process() as twilio_url, ClientSession() as http:
        port = free_port()
        config = tmp_path / "aftercare.toml"
        config.write_text(config_text(port, twilio_url, database, steps=STEPS))
        service = Service(config, port, tmp_path / "service.log", workers=2)
        try:
            yield service, twilio_url, http
        finally:
            service.stop()


@pytest.fixture
async def two(tmp_path: Path, db_path: Path) -> AsyncIterator[tuple[Service, str, ClientSession]]:
    """Two workers on one SQLite file."""
    async with two_workers(tmp_path, f"sqlite+aiosqlite:///{db_path}") as running:
        yield running


@pytest.fixture
async def two_on_each(
    tmp_path: Path, database: str
) -> AsyncIterator[tuple[Service, str, ClientSession]]:
    """Two workers on one SQLite file, then on one PostgreSQL database."""
    async with two_workers(tmp_path, database) as running:
        yield running


def phone(i: int) -> str:
    return f"+141555501{i + 10:02d}"


async def post_plans(service: Service, http: ClientSession) -> list[str]:
    """PLANS treatments completed now, each to its own patient and number; their ids."""
    return await asyncio.gather(
        *(service.post_plan(http, id=f"pt_{i}", phone=phone(i)) for i in range(PLANS))
    )


async def each_sent_once(http: ClientSession, twilio_url: str) -> list[dict[str, Any]]:
    """Every note of every plan reached Twilio exactly once; what arrived."""
    total = PLANS * STEPS

    async def arrived() -> bool:
        return len((await fake_state(http, twilio_url))["messages"]) >= total

    await until_async(arrived, timeout=60)
    await asyncio.sleep(1.0)  # a doubled send would show up by now
    messages: list[dict[str, Any]] = (await fake_state(http, twilio_url))["messages"]
    sent = Counter((m["to"], m["body"].split("\n")[0]) for m in messages)
    assert len(sent) == total and set(sent.values()) == {1}
    return messages


async def all_delivered(service: Service, http: ClientSession, treatments: list[str]) -> None:
    """Every message of every plan is `delivered`: each worker applied the callbacks it got."""

    async def done() -> bool:
        statuses = [await service.statuses(http, t) for t in treatments]
        return all(s == ["delivered"] * STEPS for s in statuses)

    await until_async(done, timeout=60)


async def every_answered_callback_applied(
    service: Service, http: ClientSession, treatments: list[str], twilio_url: str
) -> None:
    """Every message is `sent` or `delivered`, and at least as many are `delivered` as the
    service answered `delivered` callbacks for. A callback in flight to the killed worker
    got no answer (Twilio does not post a status callback again); none answered is lost."""

    async def applied() -> bool:
        statuses = [s for t in treatments for s in await service.statuses(http, t)]
        callbacks = (await fake_state(http, twilio_url))["callbacks"]
        if len(callbacks) < 3 * PLANS * STEPS:  # sending, sent, delivered: not all posted yet
            return False
        answered = {sid for sid, status, code in callbacks if status == "delivered" and code == 200}
        return set(statuses) <= {"sent", "delivered"} and statuses.count("delivered") >= len(
            answered
        )

    await until_async(applied, timeout=30)


def log_lines(service: Service) -> list[dict[str, Any]]:
    return [
        json.loads(line) for line in service.log.read_text().splitlines() if line.startswith("{")
    ]


def senders(service: Service) -> Counter[str]:
    """How many `message sent` lines each process wrote."""
    return Counter(e["proc"] for e in log_lines(service) if e["message"] == "message sent")


def sends_counted(text: str) -> float:
    """`aftercare_sends_total{outcome="accepted"}` (creates Twilio took) in an exposition."""
    found = re.search(r'^aftercare_sends_total\{outcome="accepted"\} (\S+)$', text, re.M)
    assert found, [line for line in text.splitlines() if "sends" in line]
    return float(found.group(1))


def recovered(text: str) -> float:
    """Claims of a dead worker found at Twilio (`aftercare_claim_recoveries_total`)."""
    found = re.search(r'^aftercare_claim_recoveries_total\{result="found"\} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


async def scrape(service: Service) -> str:
    """`/metrics` over a new connection (so either worker may answer)."""
    async with (
        ClientSession(connector=TCPConnector(force_close=True)) as fresh,
        fresh.get(service.base + "/metrics") as response,
    ):
        assert response.status == 200
        return await response.text()


class TestTwoWorkers:
    async def test_a_burst_goes_out_once_with_callbacks_and_metrics_add_up(self, two: Any) -> None:
        service, twilio_url, http = two
        await service.start(http)
        treatments = await post_plans(service, http)
        await each_sent_once(http, twilio_url)
        await all_delivered(service, http, treatments)
        assert set(senders(service)) == {"worker-1", "worker-2"}  # both did their share
        assert sum(senders(service).values()) == PLANS * STEPS
        for _ in range(6):  # whichever worker answers counts both
            assert sends_counted(await scrape(service)) == PLANS * STEPS
        state = await fake_state(http, twilio_url)
        assert all(status == 200 for _sid, _s, status in state["callbacks"])

    async def test_a_worker_killed_is_replaced_and_nothing_is_lost(self, two: Any) -> None:
        service, twilio_url, http = two
        await service.start(http)
        treatments = await post_plans(service, http)

        async def a_worker_sent() -> bool:
            return bool(senders(service))

        await until_async(a_worker_sent)
        name = senders(service).most_common(1)[0][0]
        killed = worker_pids(service)[name]
        os.kill(killed, signal.SIGKILL)

        async def replaced() -> bool:
            return worker_pids(service).get(name) not in (None, killed)

        await until_async(replaced)
        await each_sent_once(http, twilio_url)
        await every_answered_callback_applied(service, http, treatments, twilio_url)
        # The dead worker's sends still count; what it had in flight was found at Twilio by
        # the claim's reconciliation (counted there), or sent by the other.
        logged = Counter(e["pid"] for e in log_lines(service) if e["message"] == "message sent")
        assert logged[killed] > 0
        text = await scrape(service)
        assert sends_counted(text) >= sum(logged.values())
        assert sends_counted(text) + recovered(text) >= PLANS * STEPS

    async def test_sigterm_stops_every_worker(self, two: Any) -> None:
        service, _twilio_url, http = two
        await service.start(http)
        pids = list(worker_pids(service).values())
        assert len(pids) == 2
        assert service.kill(signal.SIGTERM) == 0
        for pid in pids:
            assert not alive(pid)
        stopped = [e for e in log_lines(service) if e["message"] == "workers stopped"]
        assert stopped and stopped[-1]["workers"] == 2

    async def test_workers_of_a_killed_supervisor_stop_by_themselves(self, two: Any) -> None:
        service, _twilio_url, http = two
        await service.start(http)
        pids = list(worker_pids(service).values())
        service.kill(signal.SIGKILL)
        deadline = time.monotonic() + 15
        while any(alive(pid) for pid in pids):
            assert time.monotonic() < deadline, "workers outlived their supervisor"
            await asyncio.sleep(0.1)


def worker_pids(service: Service) -> dict[str, int]:
    """The last pid the supervisor started for each worker."""
    started = [e for e in log_lines(service) if e["message"] == "worker started"]
    return {f"worker-{e['worker']}": e["worker_pid"] for e in started}


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie of ours is reaped by its parent; gone counts as stopped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[1].startswith("Z"))
