"""Several replicas on one PostgreSQL database: every message exactly once, even when one
replica is killed mid-run (docs/design.md: the claim protocol is what makes replicas safe)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import ClientSession

from tests.fakes.twilio_process import fake_twilio_process
from tests.helpers.ports import free_port
from tests.processes import Service, config_text, fake_state, until_async

STEPS = 6
PATIENTS = 8


class TestReplicas:
    async def test_killed_replica_leaves_every_message_sent_exactly_once(
        self, tmp_path: Path, pg_database: str
    ) -> None:
        """Two replicas share the plans; SIGKILL one mid-run; the other finishes, once each."""
        async with fake_twilio_process(callbacks=False) as twilio_url, ClientSession() as http:
            replicas = []
            for name in ("a", "b"):
                port = free_port()
                config = tmp_path / f"{name}.toml"
                config.write_text(config_text(port, twilio_url, pg_database, steps=STEPS))
                replicas.append(Service(config, port, tmp_path / f"{name}.log"))
            try:
                await run_and_kill(http, twilio_url, *replicas)
            finally:
                for replica in replicas:
                    replica.stop()


async def run_and_kill(http: ClientSession, twilio_url: str, a: Service, b: Service) -> None:
    await asyncio.gather(a.start(http), b.start(http))
    # Twilio answers after 2 s: a replica killed right after a send reached Twilio dies
    # holding that claim, with no record of the sid.
    for i in range(PATIENTS):
        await http.post(
            twilio_url + "/_control/behaviour", json={"to": phone(i), "behaviour": "lateanswer:2"}
        )
    for i in range(PATIENTS):
        replica = (a, b)[i % 2]
        await replica.post_plan(http, id=f"pt_{i}", phone=phone(i))

    async def a_is_sending() -> bool:
        messages = (await fake_state(http, twilio_url))["messages"]
        return any(m["callback"].startswith(a.base) for m in messages)

    await until_async(a_is_sending)
    a.kill()
    total = PATIENTS * STEPS

    async def all_arrived() -> bool:
        return len((await fake_state(http, twilio_url))["messages"]) >= total

    await until_async(all_arrived, timeout=40)
    await asyncio.sleep(2.5)  # past a lease: a doubled send would show up by now
    state = await fake_state(http, twilio_url)
    sent = sorted((m["to"], m["body"].split("\n")[0]) for m in state["messages"])
    assert len(sent) == len(set(sent)) == total
    assert len(state["attempts"]) == total
    # The killed replica died holding claims, and the survivor reconciled them.
    assert "reconciling an expired claim" in b.log.read_text()


def phone(i: int) -> str:
    return f"+1415555{i:04d}"
