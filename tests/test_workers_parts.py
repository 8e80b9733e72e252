"""The parts of `serve --workers N` that need no running service: the setting and its checks,
`--workers` on the command line, and the SQLite writer lock across processes (docs/workers.md)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from service.config.checks import cross_check
from service.config.settings import Settings
from service.delivery import pacing
from service.storage.writer_lock import WriterLock
from tests.fixtures.cli import _isolated, example, run
from tests.support import config_data, make_settings

__all__ = ["_isolated", "example"]  # the fixtures, from tests/fixtures/cli.py


class TestSetting:
    def test_one_worker_by_default(self, tmp_path: Path) -> None:
        assert make_settings(tmp_path / "a.db").server.worker_count() == 1

    def test_auto_is_the_cores_this_process_may_use(self, tmp_path: Path) -> None:
        settings = make_settings(tmp_path / "a.db", server={"workers": "auto"})
        assert settings.server.worker_count() == len(os.sched_getaffinity(0))

    @pytest.mark.parametrize("value", [0, 65, "many"])
    def test_a_count_out_of_range_is_refused(self, tmp_path: Path, value: object) -> None:
        with pytest.raises(ValidationError, match="workers"):
            make_settings(tmp_path / "a.db", server={"workers": value})

    def test_several_workers_cannot_share_an_in_memory_database(self) -> None:
        memory = make_settings("sqlite+aiosqlite:///:memory:", server={"workers": 2})
        assert any("server.workers" in p and "in-memory" in p for p in cross_check(memory))
        one = make_settings("sqlite+aiosqlite:///:memory:")
        assert not any("server.workers" in p for p in cross_check(one))

    def test_a_file_is_fine(self, tmp_path: Path) -> None:
        settings = make_settings(tmp_path / "a.db", server={"workers": 2})
        assert not any("server.workers" in p for p in cross_check(settings))


class TestCommandLine:
    @pytest.mark.parametrize("value", ["0", "65", "two"])
    def test_a_bad_count_is_a_usage_error(
        self, capsys: pytest.CaptureFixture[str], example: Path, value: str
    ) -> None:
        status, _out, err = run(capsys, "--config", str(example), "serve", "--workers", value)
        assert status == 2
        assert "from 1 to 64, or auto" in err


HOLD = """
import sys, time
from pathlib import Path
from service.storage.writer_lock import WriterLock
lock = WriterLock(Path(sys.argv[1]))
with lock.held():
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


class TestWriterLock:
    def test_a_writer_waits_for_another_process_and_wakes_when_it_lets_go(
        self, tmp_path: Path
    ) -> None:
        database = tmp_path / "aftercare.db"
        other = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(database), "0.5"],
            stdout=subprocess.PIPE,
            cwd=Path(__file__).resolve().parents[1],
        )
        assert other.stdout is not None and other.stdout.readline() == b"held\n"
        lock = WriterLock(database)
        started = time.monotonic()
        with lock.held():
            waited = time.monotonic() - started
        other.wait(timeout=10)
        other.stdout.close()
        lock.close()
        assert 0.3 < waited < 2.0  # it waited for the other, and not for a sleep schedule
        assert lock.path.name == "aftercare.db-writer"

    def test_one_process_takes_it_again_and_again(self, tmp_path: Path) -> None:
        lock = WriterLock(tmp_path / "aftercare.db")
        for _ in range(3):
            with lock.held():
                pass
        lock.close()


class TestPacing:
    @pytest.mark.parametrize(("workers", "gap"), [(1, 0.5), (2, 1.0)])
    def test_each_worker_paces_at_its_share_of_mps(
        self, tmp_path: Path, workers: int, gap: float
    ) -> None:
        """Two workers at `mps = 2` each send one a second: the sender sees 2 a second."""
        data = config_data(tmp_path / "a.db", server={"workers": workers})
        clinic = next(iter(data["clinics"]))
        data["clinics"][clinic]["mps"] = 2
        paces = pacing.paces(Settings.model_validate(data))
        assert paces[clinic].gap == gap
