"""The databases a run measures on: a fresh SQLite file, or a fresh PostgreSQL database
`aftercare_bench` on the server of --postgres-url, with bulk seeding (bench/seed.py) and a
scalar query for the figures."""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import seed
from report import Report, log

PG_DEFAULT = os.environ.get(
    "AFTERCARE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
PG_BENCH_DB = "aftercare_bench"


class Database:
    """One kind of database; `fresh` gives the URL of an empty one for a run."""

    kind = ""
    label = ""
    keep = False

    async def fresh(self, workdir: Path, name: str) -> str:
        raise NotImplementedError

    async def seed(self, batch: seed.Batch) -> None:
        raise NotImplementedError

    async def scalar(self, sql: str) -> object:
        raise NotImplementedError

    async def drop(self) -> None:
        pass


class Sqlite(Database):
    kind, label = "sqlite", "SQLite"

    async def fresh(self, workdir: Path, name: str) -> str:
        self.path = workdir / f"{name}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        return f"sqlite+aiosqlite:///{self.path}"

    async def seed(self, batch: seed.Batch) -> None:
        await asyncio.to_thread(seed.seed_sqlite, str(self.path), batch)

    async def scalar(self, sql: str) -> object:
        return await asyncio.to_thread(seed.sqlite_scalar, str(self.path), sql)

    async def drop(self) -> None:
        if self.keep:
            return
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)


class Postgres(Database):
    kind, label = "postgresql", "PostgreSQL"

    def __init__(self, url: str) -> None:
        parts = urlsplit(url.replace("postgresql+asyncpg://", "postgresql://", 1))
        self.admin = urlunsplit(parts)
        self.dsn = urlunsplit(parts._replace(path="/" + PG_BENCH_DB))
        self.url = self.dsn.replace("postgresql://", "postgresql+asyncpg://", 1)

    async def fresh(self, workdir: Path, name: str) -> str:
        await seed.create_database(self.admin, PG_BENCH_DB)
        return self.url

    async def seed(self, batch: seed.Batch) -> None:
        await seed.seed_postgres(self.dsn, batch)

    async def scalar(self, sql: str) -> object:
        return await seed.postgres_scalar(self.dsn, sql)

    async def drop(self) -> None:
        if not self.keep:
            await seed.drop_database(self.admin, PG_BENCH_DB)

    async def available(self) -> bool:
        try:
            await seed.postgres_scalar(self.admin, "SELECT 1")
            return True
        except Exception as exc:
            log(f"PostgreSQL not reachable ({type(exc).__name__}: {exc}): skipped")
            return False


async def open_databases(args: argparse.Namespace, report: Report) -> list[Database]:
    """The databases of --databases that answer; a note for PostgreSQL when it does not."""
    databases: list[Database] = []
    for kind in (d.strip() for d in args.databases.split(",") if d.strip()):
        if kind == "sqlite":
            databases.append(Sqlite())
        elif kind == "postgresql":
            pg = Postgres(args.postgres_url)
            if await pg.available():
                databases.append(pg)
            else:
                report.note("PostgreSQL: not reachable, its rows are missing")
    for db in databases:
        db.keep = args.keep
    return databases
