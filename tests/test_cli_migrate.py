"""`aftercare migrate` (service.cli): from nothing to head in a fresh SQLite file, every table and
Alembic's version, and a second run changes nothing.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from tests.fixtures.cli import _isolated, example, run

__all__ = ["_isolated", "example"]  # the fixtures, from tests/fixtures/cli.py


TABLES = {
    "event",
    "patient",
    "treatment",
    "message",
    "message_history",
    "opt_out",
    "inbound",
    "alembic_version",
}


def tables(db: Path) -> set[str]:
    """The table names in an SQLite file."""
    with closing(sqlite3.connect(db)) as conn:
        return {
            name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }


def schema(db: Path) -> list[tuple[str, str, str]]:
    """Every table and index of an SQLite file with its SQL."""
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()


class TestMigrate:
    def test_migrate_creates_every_table_in_a_fresh_sqlite_file(
        self, capsys: pytest.CaptureFixture[str], example: Path, tmp_path: Path
    ) -> None:
        """From nothing to head: the service's tables and Alembic's version."""
        status, out, _ = run(capsys, "--config", str(example), "migrate")
        assert status == 0
        assert "head" in out
        assert tables(tmp_path / "aftercare.db") >= TABLES

    def test_migrate_twice_changes_nothing(
        self, capsys: pytest.CaptureFixture[str], example: Path, tmp_path: Path
    ) -> None:
        """A second run finds the schema at head and leaves it as it is."""
        db = tmp_path / "aftercare.db"
        assert run(capsys, "--config", str(example), "migrate")[0] == 0
        first = schema(db)
        assert run(capsys, "--config", str(example), "migrate")[0] == 0
        assert schema(db) == first
        with closing(sqlite3.connect(db)) as conn:
            assert len(conn.execute("SELECT version_num FROM alembic_version").fetchall()) == 1
