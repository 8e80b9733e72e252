"""The processes a run measures and drives: the real service (`python -m service --config
<toml> serve`, from the tree of `--root`), bench/fake_twilio.py, and the context each
scenario gets (options, work directory, HTTP session, fake, report, profiler).

With `--workers N` the service's config gets `[server] workers = N` (only then: a tree from
before `serve --workers` refuses the key), and the process the bench starts is a supervisor
whose children are the workers; its figures are its process tree's (bench/machine.py)."""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import seed
from machine import Profiler, RssTree, proc_tree, tree_rss
from report import Report, log

from tests.fakes.twilio_wire import ACCOUNT_SID
from tests.helpers.ports import free_port
from tests.helpers.toml import to_toml

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PY = sys.executable
AUTH_TOKEN = "bench-auth-token"
SECRET = "whsec_" + base64.b64encode(b"aftercare-bench-secret-012345678").decode()
API_TOKEN = "bench-api-token-0123456789abcdefghijk"


def service_config(
    root: Path,
    *,
    port: int,
    db_url: str,
    backend: str,
    twilio_url: str,
    scheduler: dict[str, Any],
    sms: dict[str, Any] | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """The service's configuration: clinic `bench` and the protocols of `root`'s
    config.example.toml; `[server] workers` only when `workers` is given."""
    example = tomllib.loads((root / "config.example.toml").read_text())
    clinic = {
        "name": "Bench Skin Studio",
        "timezone": "America/Los_Angeles",
        "locale": "en",
        "from_number": seed.FROM_NUMBER,
        "webhook_secrets": [SECRET],
        "api_tokens": [API_TOKEN],
        "help_text": "Bench Skin Studio aftercare.",
    }
    if (root / "service" / "web" / "rate_limit.py").exists():
        # The bench's load is the figure, not the edge's per-clinic limit; a tree from before
        # the limit refuses the key (`--root`).
        clinic["rate_limit"] = "1000000/s"
    server: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "public_base_url": f"http://127.0.0.1:{port}",
    }
    if workers is not None:
        server["workers"] = workers
    return {
        "server": server,
        "database": {"url": db_url, "migrate_on_start": True},
        "sms": {"backend": backend, "opt_out_footer": "Reply STOP to opt out.", **(sms or {})},
        "twilio": {
            "account_sid": ACCOUNT_SID,
            "auth_token": AUTH_TOKEN,
            "api_base_url": twilio_url or "http://127.0.0.1:9",
            "request_timeout": "10s",
        },
        "scheduler": scheduler,
        "clinics": {seed.CLINIC: clinic},
        "protocols": example["protocols"],
    }


def clean_env() -> dict[str, str]:
    """The environment without AFTERCARE_* overrides, so the config file is what runs."""
    return {k: v for k, v in os.environ.items() if not k.startswith("AFTERCARE_")}


class FakeTwilio:
    """bench/fake_twilio.py in its own process."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "fake_twilio.log"
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self, http: aiohttp.ClientSession, extra: Sequence[str] = ()) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [PY, str(BENCH / "fake_twilio.py"), str(self.port), *extra],
                cwd=ROOT,
                stdout=out,
                stderr=out,
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                await self.count(http)
                return
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
        raise RuntimeError(f"the fake Twilio did not start; see {self.log}")

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    async def count(self, http: aiohttp.ClientSession) -> int:
        async with http.get(self.url + "/_control/count") as r:
            return int((await r.json())["count"])

    async def messages(self, http: aiohttp.ClientSession) -> list[dict[str, Any]]:
        async with http.get(self.url + "/_control/messages") as r:
            return list((await r.json())["messages"])

    async def reset(self, http: aiohttp.ClientSession) -> None:
        async with http.post(self.url + "/_control/reset") as r:
            await r.read()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


class Service:
    """`python -m service --config <toml> serve` in a subprocess, run from the tree `root`."""

    def __init__(
        self,
        name: str,
        workdir: Path,
        db_url: str,
        *,
        root: Path,
        backend: str = "console",
        twilio_url: str = "",
        scheduler: dict[str, Any] | None = None,
        sms: dict[str, Any] | None = None,
        workers: int | None = None,
    ) -> None:
        self.name = name
        self.root = root
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.scheduler = scheduler or {}
        self.config = workdir / f"{name}.toml"
        self.config.write_text(
            to_toml(
                service_config(
                    root,
                    port=self.port,
                    db_url=db_url,
                    backend=backend,
                    twilio_url=twilio_url,
                    scheduler=self.scheduler,
                    sms=sms,
                    workers=workers,
                )
            ),
            encoding="utf-8",
        )
        self.log = workdir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def command(self, *args: str) -> list[str]:
        return [PY, "-m", "service", "--config", str(self.config), *args]

    def migrate(self) -> None:
        with self.log.open("ab") as out:
            subprocess.run(
                self.command("migrate"),
                cwd=self.root,
                stdout=out,
                stderr=out,
                env=clean_env(),
                check=True,
            )

    async def start(self, http: aiohttp.ClientSession, timeout: float = 120) -> float:
        """Spawn the service; seconds from spawn to the first 200 from /readyz."""
        t0 = time.perf_counter()
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.command("serve"), cwd=self.root, stdout=out, stderr=out, env=clean_env()
            )
        while time.perf_counter() - t0 < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}; see {self.log}"
                )
            try:
                async with http.get(self.base + "/readyz") as r:
                    if r.status == 200:
                        return time.perf_counter() - t0
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.005)
        raise RuntimeError(f"{self.name} not ready after {timeout} s; see {self.log}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def rss(self) -> RssTree:
        """VmRSS of the service's process and of each of its workers."""
        return tree_rss(self.pid)

    def peak_rss(self) -> RssTree:
        """VmHWM (the peak RSS) of the service's process and of each worker now running."""
        return tree_rss(self.pid, "VmHWM")

    async def stop(self) -> int | None:
        """SIGTERM to the process the bench started (a supervisor stops its workers); then
        any process of its tree still there after 10 s is killed and named in the log."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        tree = proc_tree(self.pid)[1:]
        self.process.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.to_thread(self.process.wait, 30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = await asyncio.to_thread(self.process.wait, 10)
        await reap_leftovers(self.name, tree)
        return code


async def reap_leftovers(name: str, pids: Sequence[int], wait: float = 10.0) -> None:
    """Kill the processes of `pids` still running `wait` s on (workers that outlived their
    supervisor would hold the port and the database of the next run)."""
    deadline = time.monotonic() + wait
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if Path(f"/proc/{p}").exists() and not _zombie(p)]
        await asyncio.sleep(0.05)
    for pid in alive:
        log(f"{name}: process {pid} still running {wait:g} s after SIGTERM: killed")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@dataclass
class Context:
    """What every scenario gets: the options, the work directory, one HTTP session, the fake
    Twilio, the report, the profiler and the [scheduler] overrides."""

    args: argparse.Namespace
    workdir: Path
    http: aiohttp.ClientSession
    fake: FakeTwilio
    report: Report
    profiler: Profiler
    scheduler: dict[str, Any]
    callbacks_on: bool = True
    drain_with: dict[str, float] = field(default_factory=dict)  # burst drain, callbacks on

    def service(self, name: str, db_url: str, *, twilio: bool = True) -> Service:
        """A service for database `db_url`: sending to the fake, or (twilio=False) on the
        console backend with the service's own scheduler settings."""
        workers = getattr(self.args, "workers", None)
        if not twilio:
            return Service(
                name,
                self.workdir,
                db_url,
                root=self.args.root,
                backend="console",
                workers=workers,
            )
        return Service(
            name,
            self.workdir,
            db_url,
            root=self.args.root,
            backend="twilio",
            twilio_url=self.fake.url,
            scheduler=self.scheduler,
            sms=dict(item.partition("=")[::2] for item in getattr(self.args, "sms", [])),
            workers=workers,
        )
