"""Crashes and restarts of the real `aftercare serve` process lose nothing and double nothing.

The service runs as a subprocess against a fake Twilio in another process; the test kills
it (SIGKILL: no chance to clean up) mid-plan, and mid-send, then starts it again.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientError, ClientSession

from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, fake_twilio_process, free_port
from tests.support import FROM, PHONE, SECRET, TOKEN, completed_event, encode, signed

ROOT = Path(__file__).resolve().parents[1]
COUNT = 6


def config_text(port: int, twilio_url: str, db: Path) -> str:
    steps = "\n".join(
        f'[[protocols.quick.steps]]\nkey = "s{i}"\nkind = "aftercare"\nafter = "{i}s"\n'
        f'text = "Note {i} for {{first_name}}."\n'
        for i in range(1, COUNT + 1)
    )
    return f"""
[server]
public_base_url = "http://127.0.0.1:{port}"
[database]
url = "sqlite+aiosqlite:///{db}"
[sms]
backend = "twilio"
[twilio]
account_sid = "{ACCOUNT_SID}"
auth_token = "{AUTH_TOKEN}"
api_base_url = "{twilio_url}"
request_timeout = "10s"
[scheduler]
claim_lease = "2s"
poll_interval = "1s"
retry_initial_delay = "1s"
retry_max_delay = "2s"
[clinics.glow]
name = "Glow"
timezone = "UTC"
from_number = "{FROM}"
webhook_secrets = ["{SECRET}"]
api_tokens = ["{TOKEN}"]
quiet_hours = {{ start = "00:00", end = "00:00" }}
[protocols.quick]
title = "Quick"
{steps}
"""


class Service:
    """`aftercare serve` in a subprocess, started and killed at will."""

    def __init__(self, config: Path, port: int, log: Path) -> None:
        self.config, self.port, self.log = config, port, log
        self.process: subprocess.Popen[bytes] | None = None
        self.base = f"http://127.0.0.1:{port}"

    async def start(self, http: ClientSession) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "service", "--config", str(self.config), "serve",
                 "--port", str(self.port)], cwd=ROOT, stdout=log, stderr=log)
        await until_async(lambda: self._healthy(http), timeout=30)

    async def _healthy(self, http: ClientSession) -> bool:
        assert self.process is not None and self.process.poll() is None, self.log.read_text()
        try:
            async with http.get(self.base + "/readyz") as response:
                return response.status == 200
        except ClientError:
            return False

    def kill(self, sig: int = signal.SIGKILL) -> int:
        assert self.process is not None
        os.kill(self.process.pid, sig)
        return self.process.wait(timeout=20)


async def until_async(condition: Callable[[], Any], timeout: float = 20.0) -> None:
    """Poll an async `condition` until it is true; fail after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[Service, str, ClientSession]]:
    async with fake_twilio_process() as twilio_url, ClientSession() as http:
        port = free_port()
        config = tmp_path / "aftercare.toml"
        config.write_text(config_text(port, twilio_url, tmp_path / "aftercare.db"))
        service = Service(config, port, tmp_path / "service.log")
        yield service, twilio_url, http
        if service.process and service.process.poll() is None:
            service.kill(signal.SIGTERM)


async def fake_state(http: ClientSession, twilio_url: str) -> dict[str, Any]:
    async with http.get(twilio_url + "/_control/messages") as response:
        state: dict[str, Any] = await response.json()
        return state


async def post_plan(http: ClientSession, service: Service) -> str:
    body = completed_event(treatment={"protocol": "quick",
                                      "completed_at": datetime.now(UTC).isoformat()},
                           patient={"timezone": "UTC"})
    raw = encode(body)
    async with http.post(f"{service.base}/v1/clinics/glow/events", data=raw,
                         headers=signed(raw)) as response:
        assert response.status == 202, await response.text()
    treatment_id: str = body["data"]["treatment"]["id"]
    return treatment_id


async def statuses(http: ClientSession, service: Service, treatment_id: str) -> list[str]:
    url = f"{service.base}/v1/clinics/glow/treatments/{treatment_id}"
    async with http.get(url, headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        return [m["status"] for m in (await response.json())["messages"]]


async def assert_each_sent_once(http: ClientSession, twilio_url: str) -> None:
    async def all_arrived() -> bool:
        return len((await fake_state(http, twilio_url))["messages"]) >= COUNT

    await until_async(all_arrived, timeout=30)
    await asyncio.sleep(1.0)  # a doubled send would show up by now
    state = await fake_state(http, twilio_url)
    bodies = sorted(m["body"] for m in state["messages"])
    expected = sorted(f"Note {i} for Ana." for i in range(1, COUNT + 1))
    assert [b.split("\n")[0] for b in bodies] == expected
    assert len(state["attempts"]) == COUNT


class TestCrash:
    async def test_kill_between_sends_loses_and_doubles_nothing(self, setup: Any) -> None:
        """SIGKILL in the middle of a plan; after a restart every message is sent once."""
        service, twilio_url, http = setup
        await service.start(http)
        treatment_id = await post_plan(http, service)

        async def two_sent() -> bool:
            return len((await fake_state(http, twilio_url))["messages"]) >= 2

        await until_async(two_sent)
        service.kill()
        await service.start(http)
        await assert_each_sent_once(http, twilio_url)

        async def settled() -> bool:
            return set(await statuses(http, service, treatment_id)) <= {"sent", "delivered"}

        await until_async(settled)

    async def test_kill_with_a_send_in_flight_sends_it_once(self, setup: Any) -> None:
        """SIGKILL while Twilio holds a send unanswered; the restart reconciles, not resends."""
        service, twilio_url, http = setup
        await service.start(http)
        await http.post(twilio_url + "/_control/behaviour",
                        json={"to": PHONE, "behaviour": "lateanswer:15"})
        treatment_id = await post_plan(http, service)

        async def in_flight() -> bool:
            return len((await fake_state(http, twilio_url))["attempts"]) >= 1

        await until_async(in_flight)
        service.kill()
        await http.post(twilio_url + "/_control/behaviour", json={"to": PHONE, "behaviour": ""})
        await service.start(http)
        await assert_each_sent_once(http, twilio_url)

        async def settled() -> bool:
            return set(await statuses(http, service, treatment_id)) <= {"sent", "delivered"}

        await until_async(settled)

    async def test_sigterm_exits_zero_and_restart_finishes_the_plan(self, setup: Any) -> None:
        """SIGTERM stops the service cleanly (exit 0); a restart sends the rest, once each."""
        service, twilio_url, http = setup
        await service.start(http)
        await post_plan(http, service)

        async def one_sent() -> bool:
            return len((await fake_state(http, twilio_url))["messages"]) >= 1

        await until_async(one_sent)
        assert service.kill(signal.SIGTERM) == 0
        await service.start(http)
        await assert_each_sent_once(http, twilio_url)
