"""Crashes and restarts of the real `aftercare serve` process lose nothing and double nothing.

The service runs as a subprocess against a fake Twilio in another process; the test kills
it (SIGKILL: no chance to clean up) mid-plan, and mid-send, then starts it again.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession

from tests.fakes.twilio import AUTH_TOKEN, message_sid, sign_twilio
from tests.fakes.twilio_process import fake_twilio_process
from tests.helpers.ports import free_port
from tests.processes import Service, config_text, fake_state, until_async
from tests.support import FROM, PHONE, SECRET, TOKEN

COUNT = 6


@pytest.fixture
async def setup(tmp_path: Path, database: str) -> AsyncIterator[tuple[Service, str, ClientSession]]:
    async with fake_twilio_process() as twilio_url, ClientSession() as http:
        port = free_port()
        config = tmp_path / "aftercare.toml"
        config.write_text(config_text(port, twilio_url, database, steps=COUNT))
        service = Service(config, port, tmp_path / "service.log")
        yield service, twilio_url, http
        service.stop()


async def assert_each_sent_once(http: ClientSession, twilio_url: str, count: int) -> None:
    """`count` notes arrived at Twilio, each exactly once."""

    async def all_arrived() -> bool:
        return len((await fake_state(http, twilio_url))["messages"]) >= count

    await until_async(all_arrived, timeout=30)
    await asyncio.sleep(1.0)  # a doubled send would show up by now
    state = await fake_state(http, twilio_url)
    bodies = sorted((m["to"], m["body"].split("\n")[0]) for m in state["messages"])
    assert len(bodies) == len(set(bodies)) == count
    assert len(state["attempts"]) == count


async def settled(http: ClientSession, service: Service, treatment_id: str) -> None:
    async def done() -> bool:
        return set(await service.statuses(http, treatment_id)) <= {"sent", "delivered"}

    await until_async(done)


class TestCrash:
    async def test_kill_between_sends_loses_and_doubles_nothing(self, setup: Any) -> None:
        """SIGKILL in the middle of a plan; after a restart every message is sent once."""
        service, twilio_url, http = setup
        await service.start(http)
        treatment_id = await service.post_plan(http)

        async def two_sent() -> bool:
            return len((await fake_state(http, twilio_url))["messages"]) >= 2

        await until_async(two_sent)
        service.kill()
        await service.start(http)
        await assert_each_sent_once(http, twilio_url, COUNT)
        await settled(http, service, treatment_id)

    async def test_kill_with_a_send_in_flight_sends_it_once(self, setup: Any) -> None:
        """SIGKILL while Twilio holds a send unanswered; the restart reconciles, not resends."""
        service, twilio_url, http = setup
        await service.start(http)
        await http.post(
            twilio_url + "/_control/behaviour", json={"to": PHONE, "behaviour": "lateanswer:15"}
        )
        treatment_id = await service.post_plan(http)

        async def in_flight() -> bool:
            return len((await fake_state(http, twilio_url))["attempts"]) >= 1

        await until_async(in_flight)
        service.kill()
        await http.post(twilio_url + "/_control/behaviour", json={"to": PHONE, "behaviour": ""})
        await service.start(http)
        await assert_each_sent_once(http, twilio_url, COUNT)
        await settled(http, service, treatment_id)

    async def test_sigterm_exits_zero_and_restart_finishes_the_plan(self, setup: Any) -> None:
        """SIGTERM stops the service cleanly (exit 0); a restart sends the rest, once each."""
        service, twilio_url, http = setup
        await service.start(http)
        await service.post_plan(http)

        async def one_sent() -> bool:
            return len((await fake_state(http, twilio_url))["messages"]) >= 1

        await until_async(one_sent)
        assert service.kill(signal.SIGTERM) == 0
        await service.start(http)
        await assert_each_sent_once(http, twilio_url, COUNT)

    async def test_sigterm_during_a_send_lets_it_finish_and_exits_zero(self, setup: Any) -> None:
        """SIGTERM with a send in flight: the send completes and is recorded; nothing doubles."""
        service, twilio_url, http = setup
        await service.start(http)
        await http.post(
            twilio_url + "/_control/behaviour", json={"to": PHONE, "behaviour": "lateanswer:1.5"}
        )
        treatment_id = await service.post_plan(http)

        async def in_flight() -> bool:
            return len((await fake_state(http, twilio_url))["attempts"]) >= 1

        await until_async(in_flight)
        assert service.kill(signal.SIGTERM) == 0
        log = service.log.read_text()
        assert "message sent" in log  # recorded before the process left
        await http.post(twilio_url + "/_control/behaviour", json={"to": PHONE, "behaviour": ""})
        await service.start(http)
        await assert_each_sent_once(http, twilio_url, COUNT)
        await settled(http, service, treatment_id)


class TestLogs:
    async def test_the_service_says_it_serves_on_uvloop(self, setup: Any) -> None:
        """`aftercare serve` runs on uvloop's event loop (cheaper a step than asyncio's) and
        says so, with where it listens, in its first log line."""
        service, _twilio_url, http = setup
        await service.start(http)
        lines = [
            json.loads(line)
            for line in service.log.read_text().splitlines()
            if line.startswith("{")
        ]
        serving = next(line for line in lines if line["message"] == "serving")
        assert serving["event_loop"] == "uvloop"
        assert serving["port"] == service.port

    async def test_a_full_run_logs_no_number_body_or_secret(self, setup: Any) -> None:
        """After events, sends, callbacks, STOP and HELP, the logs hold no number, no text
        of a message, and no secret; every line is one JSON object."""
        service, twilio_url, http = setup
        await service.start(http)
        await service.post_plan(http)
        await assert_each_sent_once(http, twilio_url, COUNT)
        for body in ("HELP", "It itches a bit", "STOP"):
            params = {"From": PHONE, "To": FROM, "Body": body, "MessageSid": message_sid()}
            signature = sign_twilio(AUTH_TOKEN, service.base + "/v1/twilio/inbound", params)
            async with http.post(
                service.base + "/v1/twilio/inbound",
                data=params,
                headers={"X-Twilio-Signature": signature},
            ) as response:
                assert response.status == 200
        service.stop()
        lines = service.log.read_text().splitlines()
        assert len(lines) > COUNT
        for line in lines:
            json.loads(line)
        text = "\n".join(lines)
        assert not re.search(r"\+\d{7,}", text), "an unmasked phone number was logged"
        for secret in ("Note 1 for Ana", "It itches", SECRET, TOKEN, AUTH_TOKEN):
            assert secret not in text
