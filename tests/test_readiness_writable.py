"""Contract §14, "Readiness means writable": /readyz fails, naming the check, when the database
refuses a write, not only a read, and recovers when writes succeed again.

From outside: `aftercare serve` as a subprocess whose SQLite file lives on a small tmpfs that
the test fills and empties (mounting needs root, as CI runs; skipped otherwise, saying so). On
PostgreSQL, through the real app: the database turned read-only (as a demoted primary is).
"""

from __future__ import annotations

import asyncio
import errno
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from pytest_aiohttp import AiohttpClient

from service.web.app import create_app
from tests.helpers.ports import free_port
from tests.helpers.toml import to_toml
from tests.processes import Service
from tests.support import config_data, make_settings

DEADLINE = 15.0  # s for /readyz to follow the disk


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs mounted for the test, unmounted after it."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.fixture
async def served(tmp_path: Path, small_disk: Path) -> AsyncIterator[tuple[Service, Any]]:
    """`serve` on the small disk's database (migrated on start), and an HTTP session."""
    port = free_port()
    data = config_data(
        small_disk / "aftercare.db", server={"public_base_url": f"http://127.0.0.1:{port}"}
    )
    config = tmp_path / "config.toml"
    config.write_text(to_toml(data), encoding="utf-8")
    service = Service(config, port, tmp_path / "serve.log")
    async with aiohttp.ClientSession() as http:
        try:
            await service.start(http)
            yield service, http
        finally:
            service.stop()


def fill(disk: Path) -> Path:
    """Write a file on `disk` until it is full; the file."""
    path = disk / "filler"
    with path.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return path


async def readiness_until(http: Any, base: str, status: int) -> dict[str, Any]:
    """Poll /readyz until it answers `status` (within DEADLINE); its body."""
    deadline = asyncio.get_running_loop().time() + DEADLINE
    while True:
        async with http.get(base + "/readyz") as answer:
            body: dict[str, Any] = await answer.json()
            if answer.status == status:
                return body
        assert asyncio.get_running_loop().time() < deadline, body
        await asyncio.sleep(0.2)


class TestAFullDisk:
    async def test_readyz_fails_naming_the_write_then_recovers(
        self, served: tuple[Service, Any], small_disk: Path
    ) -> None:
        """Disk filled: 503 with checks.database_write failing (reads still answer); the
        filler removed: 200 again, the same process."""
        service, http = served
        await readiness_until(http, service.base, 200)
        filler = fill(small_disk)
        body = await readiness_until(http, service.base, 503)
        assert body["status"] == "unavailable"
        assert body["checks"]["database"] == "ok"
        assert body["checks"]["database_write"].startswith("failing")
        filler.unlink()
        body = await readiness_until(http, service.base, 200)
        assert body["checks"] == {"database": "ok", "database_write": "ok", "scheduler": "ok"}
        assert service.process is not None and service.process.poll() is None


class TestAReadOnlyPrimary:
    async def test_readyz_fails_while_postgresql_refuses_writes(
        self, pg_database: str, aiohttp_client: AiohttpClient
    ) -> None:
        """The database made read-only (default_transaction_read_only, as on a standby) and
        the app's connections renewed: 503 naming the write; writable again: 200."""
        client = await aiohttp_client(create_app(make_settings(pg_database)))
        assert (await client.get("/readyz")).status == 200
        name = sa.make_url(pg_database).database
        try:
            await _read_only(pg_database, name, on=True)
            body = await _readyz_until(client, 503)
            assert body["checks"]["database_write"].startswith("failing: write refused")
        finally:
            await _read_only(pg_database, name, on=False)
        await _readyz_until(client, 200)


async def _readyz_until(client: Any, status: int) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + DEADLINE
    while True:
        answer = await client.get("/readyz")
        body: dict[str, Any] = await answer.json()
        if answer.status == status:
            return body
        assert asyncio.get_running_loop().time() < deadline, body
        await asyncio.sleep(0.2)


async def _read_only(url: str, name: str | None, *, on: bool) -> None:
    """Set the database's default_transaction_read_only and end its other sessions (new ones
    take the setting; the app's pool reconnects)."""
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql("SET default_transaction_read_only = off")
            setting = "SET default_transaction_read_only = on" if on else "RESET ALL"
            await conn.exec_driver_sql(f'ALTER DATABASE "{name}" {setting}')
            await conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
    finally:
        await engine.dispose()
