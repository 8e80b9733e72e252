"""Shared fixtures: a migrated SQLite file per test, the app through its real factory."""

from __future__ import annotations

import gc
import shutil
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from service.config import Settings
from service.delivery.sms.base import SmsSender
from service.storage.database import migrate
from service.web.app import create_app
from tests.pg import emptied, worker_database
from tests.support import FakeClock, make_settings

AppClient = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[AppClient]]  # the make_client fixture

# The helpers of tests/fixtures/ came out of test modules: a failing assert in one reports its
# values as it did there.
pytest.register_assert_rewrite("tests.fixtures")


@pytest.fixture(scope="session")
def pg_test_database() -> Iterator[str]:
    """This test process's migrated PostgreSQL database (skipped when no server answers)."""
    with worker_database() as name:
        yield name


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file to copy per test (migrating each one costs ~0.1 s a test)."""
    path = tmp_path_factory.mktemp("template") / "aftercare.db"
    migrate(f"sqlite+aiosqlite:///{path}")
    assert not path.with_name(path.name + "-wal").exists()  # all of it is in the one file
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a fresh, migrated database: an SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{request.getfixturevalue('db_path')}"
        return
    yield request.getfixturevalue("pg_database")


@pytest.fixture
def pg_database(pg_test_database: str) -> str:
    """The URL of an empty, migrated PostgreSQL database."""
    return emptied(pg_test_database)


@pytest.fixture
def db_path(tmp_path: Path, sqlite_template: Path) -> Path:
    """A migrated SQLite database file."""
    path = tmp_path / "aftercare.db"
    shutil.copyfile(sqlite_template, path)
    return path


@pytest.fixture
def settings(database: str) -> Settings:
    """Test settings on a fresh database of each kind, console backend."""
    return make_settings(database)


@pytest.fixture
def clock() -> FakeClock:
    """A clock standing still at 2026-11-25 15:00 UTC until moved."""
    return FakeClock()


@pytest.fixture
def make_client(
    aiohttp_client: AiohttpClient,
) -> Callable[..., Awaitable[AppClient]]:
    """Start the app through `create_app` and return a client for it."""

    async def start(
        settings: Settings, *, sender: SmsSender | None = None, clock: Any = None
    ) -> AppClient:
        return await aiohttp_client(create_app(settings, sender=sender, clock=clock))

    return start


@pytest.fixture
async def client(
    make_client: Callable[..., Awaitable[AppClient]], settings: Settings, clock: FakeClock
) -> AppClient:
    """The app on `settings` (a fresh database of each kind), its time the fake `clock`'s."""
    return await make_client(settings, clock=clock)


@pytest.fixture
def frozen_heap() -> Iterator[None]:
    """The heap as `serve` keeps it (gc.freeze at start, cli._freeze_heap), for a test that
    times the service: in a suite's process a full collection walks the objects of every test
    before, and one that fell in the window measured held the loop for most of a second."""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()
