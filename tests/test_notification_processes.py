"""Contract §11 from outside the process: `aftercare serve` subprocesses, the fake Twilio in
another process, and a fake clinic endpoint in the test's loop that verifies signatures.

Messages fail permanently (the fake Twilio answers 21211), so each one is a message.failed
notification written in the outcome's transaction; the tests kill the service while the
endpoint holds the attempt, and run two replicas on one PostgreSQL database.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import ClientSession
from pytest_aiohttp import AiohttpServer

from tests.fakes.clinic import FakeClinic, serve_clinic
from tests.fakes.twilio_process import fake_twilio_process
from tests.helpers.client import bearer
from tests.helpers.ports import free_port
from tests.helpers.toml import to_toml
from tests.processes import Service, process_config, until_async
from tests.support import PHONE, SECRET, TOKEN


def write_config(path: Path, port: int, twilio_url: str, db: str, hook: str, steps: int) -> None:
    config = process_config(port, twilio_url, db, steps=steps)
    config["clinics"]["glow"]["notifications"] = {"url": hook, "secrets": [SECRET]}
    config["notifications"] = {
        "timeout": "1s",
        "retry_initial_delay": "1s",
        "retry_max_delay": "2s",
    }
    path.write_text(to_toml(config))


async def fail_for(http: ClientSession, twilio_url: str, phone: str) -> None:
    """The fake Twilio refuses every message to `phone` (21211: a permanent failure)."""
    behaviour = {"to": phone, "behaviour": "error:21211"}
    await http.post(twilio_url + "/_control/behaviour", json=behaviour)


async def delivered(http: ClientSession, service: Service) -> list[dict[str, Any]]:
    """The delivered notifications, through the API (every page)."""
    found: list[dict[str, Any]] = []
    params = {"state": "delivered", "limit": "200"}
    while True:
        url = f"{service.base}/v1/clinics/glow/notifications"
        async with http.get(url, params=params, headers=bearer(TOKEN)) as answer:
            page = await answer.json()
        found += page["notifications"]
        if page["next_cursor"] is None:
            return found
        params["cursor"] = page["next_cursor"]


async def test_a_kill_while_the_clinic_holds_the_attempt_loses_no_notification(
    tmp_path: Path, database: str, aiohttp_server: AiohttpServer
) -> None:
    """SIGKILL after the change and before the delivery completed; the restarted service
    posts the same webhook-id again (at least once) and the notification ends delivered."""
    clinic = FakeClinic(SECRET)
    clinic.answers.append("hang")
    hook = await serve_clinic(aiohttp_server, clinic)
    async with fake_twilio_process(callbacks=False) as twilio_url, ClientSession() as http:
        port = free_port()
        write_config(tmp_path / "a.toml", port, twilio_url, database, hook, steps=1)
        service = Service(tmp_path / "a.toml", port, tmp_path / "service.log")
        try:
            await fail_for(http, twilio_url, PHONE)
            await service.start(http)
            await service.post_plan(http)

            async def held() -> bool:
                return len(clinic.received) == 1

            await until_async(held)
            service.kill()
            clinic.release.set()
            await service.start(http)

            async def done() -> bool:
                return len(await delivered(http, service)) == 1

            await until_async(done, timeout=30)
            [notification] = await delivered(http, service)
        finally:
            service.stop()
    assert notification["type"] == "message.failed"
    assert clinic.ids() == [notification["id"]] * 2
    assert all(r.verified for r in clinic.received)
    assert [a["http_status"] for a in notification["attempts"]] == [200]  # the first never ended
    log = service.log.read_text()
    assert "not to be logged" not in log and SECRET not in log and PHONE not in log


async def test_two_replicas_deliver_each_notification_once(
    tmp_path: Path, pg_database: str, aiohttp_server: AiohttpServer
) -> None:
    """Two replicas on one PostgreSQL database, many notifications at once: each webhook-id
    arrives once: each attempt is claimed by one replica."""
    clinic = FakeClinic(SECRET)
    hook = await serve_clinic(aiohttp_server, clinic)
    patients, steps = 12, 3
    async with fake_twilio_process(callbacks=False) as twilio_url, ClientSession() as http:
        replicas = []
        for name in ("a", "b"):
            port = free_port()
            write_config(tmp_path / f"{name}.toml", port, twilio_url, pg_database, hook, steps)
            replicas.append(Service(tmp_path / f"{name}.toml", port, tmp_path / f"{name}.log"))
        try:
            await asyncio.gather(*(r.start(http) for r in replicas))
            for i in range(patients):
                await fail_for(http, twilio_url, phone(i))
                await replicas[i % 2].post_plan(http, id=f"pt_{i}", phone=phone(i))

            async def all_delivered() -> bool:
                return len(await delivered(http, replicas[0])) == patients * steps

            await until_async(all_delivered, timeout=40)
            await asyncio.sleep(1.5)  # a doubled attempt would have arrived by now
        finally:
            for replica in replicas:
                replica.stop()
    assert len(clinic.received) == len(set(clinic.ids())) == patients * steps
    assert all(r.verified for r in clinic.received)


def phone(i: int) -> str:
    return f"+1415555{i:04d}"
