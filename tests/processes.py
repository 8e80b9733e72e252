"""`aftercare serve` as a real subprocess, for crash, restart and replica tests."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import ClientError, ClientSession

from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN
from tests.helpers.events import completed_event, encode, signed
from tests.helpers.toml import to_toml
from tests.support import TOKEN, config_data, glow_in_utc

ROOT = Path(__file__).resolve().parents[1]


def config_text(port: int, twilio_url: str, db_url: str, *, steps: int) -> str:
    """A config serving clinic `glow` with protocol `quick`: `steps` notes, 1 s apart."""
    return to_toml(process_config(port, twilio_url, db_url, steps=steps))


def process_config(port: int, twilio_url: str, db_url: str, *, steps: int) -> dict[str, Any]:
    """`config_text`'s configuration as a dict."""
    notes = [
        {
            "key": f"s{i}",
            "kind": "aftercare",
            "after": f"{i}s",
            "text": f"Note {i} for {{first_name}}.",
        }
        for i in range(1, steps + 1)
    ]
    glow = glow_in_utc()
    return config_data(
        db_url,
        server={"public_base_url": f"http://127.0.0.1:{port}"},
        sms={"backend": "twilio"},
        twilio={
            "account_sid": ACCOUNT_SID,
            "auth_token": AUTH_TOKEN,
            "api_base_url": twilio_url,
            "request_timeout": "2s",
        },
        scheduler={
            "claim_lease": "4s",
            "poll_interval": "1s",
            "retry_initial_delay": "1s",
            "retry_max_delay": "2s",
        },
        clinics={"glow": glow},
        protocols={"quick": {"title": "Quick", "steps": notes}},
    )


async def until_async(condition: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    """Poll an async `condition` until it is true; fail after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


class Service:
    """`aftercare serve` in a subprocess, started and killed at will."""

    def __init__(self, config: Path, port: int, log: Path, *, workers: int | None = None) -> None:
        self.config, self.port, self.log = config, port, log
        self.workers = workers  # `serve --workers N` (a supervisor and N workers), else one
        self.process: subprocess.Popen[bytes] | None = None
        self.base = f"http://127.0.0.1:{port}"

    async def start(self, http: ClientSession) -> None:
        """Start the process and wait until it is ready."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "service",
                    "--config",
                    str(self.config),
                    "serve",
                    "--port",
                    str(self.port),
                    *(() if self.workers is None else ("--workers", str(self.workers))),
                ],
                cwd=ROOT,
                stdout=log,
                stderr=log,
            )
        await until_async(lambda: self._ready(http), timeout=30)

    async def _ready(self, http: ClientSession) -> bool:
        assert self.process is not None and self.process.poll() is None, self.log.read_text()
        try:
            async with http.get(self.base + "/readyz") as response:
                return response.status == 200
        except ClientError:
            return False

    def kill(self, sig: int = signal.SIGKILL) -> int:
        """Send `sig` and wait for the process to end; its exit status."""
        assert self.process is not None
        os.kill(self.process.pid, sig)
        return self.process.wait(timeout=20)

    def stop(self) -> None:
        """Make sure the process is gone."""
        if self.process and self.process.poll() is None:
            self.kill(signal.SIGTERM)

    async def post_plan(self, http: ClientSession, **patient: Any) -> str:
        """Post a treatment completed now; its id."""
        body = completed_event(
            treatment={"protocol": "quick", "completed_at": datetime.now(UTC).isoformat()},
            patient={"timezone": "UTC", **patient},
        )
        raw = encode(body)
        async with http.post(
            f"{self.base}/v1/clinics/glow/events", data=raw, headers=signed(raw)
        ) as response:
            assert response.status == 202, await response.text()
        treatment_id: str = body["data"]["treatment"]["id"]
        return treatment_id

    async def statuses(self, http: ClientSession, treatment_id: str) -> list[str]:
        """The statuses of a treatment's messages, through the read API."""
        url = f"{self.base}/v1/clinics/glow/treatments/{treatment_id}"
        async with http.get(url, headers={"Authorization": f"Bearer {TOKEN}"}) as response:
            return [m["status"] for m in (await response.json())["messages"]]


async def fake_state(http: ClientSession, twilio_url: str) -> dict[str, Any]:
    """What the fake Twilio process has received."""
    async with http.get(twilio_url + "/_control/messages") as response:
        state: dict[str, Any] = await response.json()
        return state
