"""PostgreSQL for tests: one migrated database per test process, emptied before each test.

`AFTERCARE_TEST_POSTGRES_URL` names the server (default: the local one, trust auth). Where no
server answers, PostgreSQL runs are skipped with one clear reason, except under CI=true,
where they fail.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from service.storage.database import migrate

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
            await conn.execute(statement, timeout=60)
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
def worker_database() -> Iterator[str]:
    """A migrated database for this test process (one per pytest-xdist worker); its name."""
    url = server_url()
    require_server(url)
    name = f"aftercare_test_{os.getpid()}"
    admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
    try:
        migrate(with_database(url, name))
        yield name
    finally:
        admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# Every row out, every sequence back to 1, the schema left as migrated. Rows are few between
# tests, so DELETE (a few ms) beats TRUNCATE (~70 ms) and a database copied per test (0.3 s,
# and seconds once several test processes make PostgreSQL checkpoint at once).
_EMPTY = """
DO $$
DECLARE item record;
BEGIN
  PERFORM pg_terminate_backend(pid) FROM pg_stat_activity
    WHERE datname = current_database() AND pid <> pg_backend_pid();
  SET LOCAL session_replication_role = replica;  -- no foreign keys to order the deletes by
  FOR item IN SELECT tablename FROM pg_tables
      WHERE schemaname = 'public' AND tablename <> 'alembic_version' LOOP
    EXECUTE format('DELETE FROM public.%I', item.tablename);
  END LOOP;
  FOR item IN SELECT sequencename FROM pg_sequences WHERE schemaname = 'public' LOOP
    EXECUTE format('ALTER SEQUENCE public.%I RESTART', item.sequencename);
  END LOOP;
END $$;
"""


def emptied(name: str) -> str:
    """Database `name` with every row deleted (connections to it ended); its SQLAlchemy URL."""
    url = with_database(server_url(), name)
    admin(url, _EMPTY)
    return url
