"""Migrations on many replicas (contract §14): concurrent `migrate` runs on one PostgreSQL
database take turns behind an advisory lock, and all of them succeed."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

from service.storage.database import MIGRATION_LOCK, alembic_config
from tests.fakes.proxy import Proxy
from tests.pg import admin, require_server, server_url, with_database
from tests.processes import ROOT, config_text

REPLICAS = 4


@pytest.fixture
def fresh_database() -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database (no tables, not even Alembic's)."""
    url = server_url()
    require_server(url)
    name = f"aftercare_migrate_{uuid.uuid4().hex[:8]}"
    admin(url, f'CREATE DATABASE "{name}"')
    try:
        yield with_database(url, name)
    finally:
        admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start_migrate(config: Path) -> subprocess.Popen[str]:
    """`python -m service --config ... migrate`, without AFTERCARE_ settings from outside."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AFTERCARE_")}
    return subprocess.Popen(
        [sys.executable, "-m", "service", "--config", str(config), "migrate"],
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def write_config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(config_text(8080, "http://127.0.0.1:9", url, steps=1), encoding="utf-8")
    return path


def dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def versions(url: str) -> list[str]:
    conn = await asyncpg.connect(dsn(url), timeout=3)
    try:
        return [row[0] for row in await conn.fetch("SELECT version_num FROM alembic_version")]
    finally:
        await conn.close()


def head() -> str:
    script = ScriptDirectory.from_config(alembic_config("postgresql://unused"))
    revision = script.get_current_head()
    assert revision is not None
    return revision


class TestMigrationsOnManyReplicas:
    async def test_replicas_migrating_at_once_all_succeed_and_reach_head(
        self, fresh_database: str, tmp_path: Path
    ) -> None:
        """Several `migrate` processes reaching a fresh database at the same moment (a proxy
        holds their connections until all have arrived) all exit 0; the schema is at head,
        recorded once."""
        real = make_url(fresh_database)
        proxy = Proxy(real.host or "127.0.0.1", real.port or 5432)
        proxy.hold()
        await proxy.start()
        url = real.set(port=proxy.port).render_as_string(hide_password=False)
        config = write_config(tmp_path, url)
        runs = [start_migrate(config) for _ in range(REPLICAS)]
        try:
            await until_held(proxy, REPLICAS)
            proxy.release()
            outputs = await asyncio.gather(
                *(asyncio.to_thread(run.communicate, timeout=120) for run in runs)
            )
        finally:
            await proxy.cut()
        failed = [err for run, (_, err) in zip(runs, outputs, strict=True) if run.returncode]
        assert not failed, f"{len(failed)} of {REPLICAS} failed: {failed[0][-2000:]}"
        assert all("migrated to head" in out for out, _ in outputs)
        assert await versions(fresh_database) == [head()]

    async def test_a_migration_waits_while_another_holds_the_lock(
        self, fresh_database: str, tmp_path: Path
    ) -> None:
        """While the lock is held elsewhere, `migrate` waits on it and creates nothing; once
        it is released, the migration runs to head."""
        holder = await asyncpg.connect(dsn(fresh_database), timeout=3)
        try:
            await holder.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
            run = start_migrate(write_config(tmp_path, fresh_database))
            await waiting_on_advisory_lock(holder)
            assert run.poll() is None
            assert await holder.fetchval("SELECT to_regclass('alembic_version')") is None
            await holder.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
            _, err = await asyncio.to_thread(run.communicate, timeout=60)
            assert run.returncode == 0, err[-2000:]
        finally:
            await holder.close()
        assert await versions(fresh_database) == [head()]


async def waiting_on_advisory_lock(conn: asyncpg.Connection, timeout: float = 30) -> None:
    """Until another session of this database waits on an advisory lock."""
    deadline = time.monotonic() + timeout
    query = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND wait_event_type = 'Lock' "
        "AND wait_event = 'advisory'"
    )
    while not await conn.fetchval(query):
        assert time.monotonic() < deadline, "no session waited on the migration lock"
        await asyncio.sleep(0.05)


async def until_held(proxy: Proxy, count: int, timeout: float = 60) -> None:
    """Until `count` connections wait at the proxy."""
    deadline = time.monotonic() + timeout
    while proxy.held < count:
        assert time.monotonic() < deadline, f"{proxy.held} of {count} connections arrived"
        await asyncio.sleep(0.05)
