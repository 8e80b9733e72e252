"""Throwaway PostgreSQL databases for tests: one migrated template per run, one copy per test.

`AFTERCARE_TEST_POSTGRES_URL` names the server (default: the local one, trust auth). Where no
server answers, PostgreSQL runs are skipped with one clear reason, except under CI=true,
where they fail.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from service.db import migrate

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def server_url() -> str:
    """The SQLAlchemy URL of the test server's maintenance database."""
    return os.environ.get("AFTERCARE_TEST_POSTGRES_URL", DEFAULT_URL)


def with_database(url: str, name: str) -> str:
    """`url` pointing at database `name`."""
    return make_url(url).set(database=name).render_as_string(hide_password=False)


async def _admin(url: str, *statements: str) -> None:
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn, timeout=3)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def admin(url: str, *statements: str) -> None:
    """Run maintenance statements (CREATE/DROP DATABASE) outside any event loop."""
    asyncio.run(_admin(url, *statements))


def require_server(url: str) -> None:
    """Skip (or, under CI=true, fail) when no PostgreSQL server answers at `url`."""
    try:
        admin(url, "SELECT 1")
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        reason = f"PostgreSQL not reachable at {make_url(url).render_as_string()}: {exc!r}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


@contextmanager
def template_database() -> Iterator[str]:
    """A migrated database to copy from, for this test run; its name."""
    url = server_url()
    require_server(url)
    name = f"aftercare_tpl_{os.getpid()}"
    admin(url, f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"')
    try:
        migrate(with_database(url, name))
        yield name
    finally:
        admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def fresh_database(template: str) -> Iterator[str]:
    """A new database copied from `template` for one test; its SQLAlchemy URL."""
    url = server_url()
    name = f"aftercare_t_{secrets.token_hex(6)}"
    admin(url, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield with_database(url, name)
    finally:
        admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
