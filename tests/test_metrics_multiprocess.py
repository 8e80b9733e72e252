"""`/metrics` with several workers (`serve --workers N`, docs/metrics.md "With several workers"):
whichever worker answers, counters and histograms are every worker's sum (an ended worker's
included), a gauge read from the database is the latest reading and not a sum, per-process
gauges sum the live workers, and the exposition is well formed. prometheus_client picks its
multiprocess mode at import, so every worker here is a real process
(tests/helpers/metrics_worker.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter as Tally
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from service.observability.metrics import MULTIPROC_DIR, process_gone
from tests.helpers.prometheus import sample

ROOT = Path(__file__).resolve().parents[1]
EVENTS = "aftercare_events_total"
ACCEPTED = {"type": "procedure_completed", "outcome": "accepted"}


def worker(directory: Path | None, *args: str | int) -> subprocess.CompletedProcess[str]:
    """Run one worker to its end, PROMETHEUS_MULTIPROC_DIR set to `directory` (unset for None)."""
    return subprocess.run(
        [sys.executable, "-m", "tests.helpers.metrics_worker", *map(str, args)],
        cwd=ROOT,
        env=environment(directory),
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )


def environment(directory: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != MULTIPROC_DIR}
    env["PYTHONPATH"] = str(ROOT)
    if directory is not None:
        env[MULTIPROC_DIR] = str(directory)
    return env


def ended(directory: Path, events: int, connections: int, pending: int) -> int:
    """A worker that did its work and exited: its pid."""
    return int(worker(directory, "work", events, connections, pending).stdout)


def scrape(directory: Path | None) -> str:
    """`/metrics` as a worker that did nothing itself renders it."""
    return worker(directory, "render").stdout


@pytest.fixture
def shared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The workers' empty directory, as the supervisor makes it and tells `process_gone`."""
    directory = tmp_path / "prometheus"
    directory.mkdir()
    monkeypatch.setenv(MULTIPROC_DIR, str(directory))
    return directory


class TestSummedOverWorkers:
    def test_counts_are_every_workers_and_outlive_them(self, shared: Path) -> None:
        """Two workers count 2 and 3 events and exit; a third, which counted nothing, answers 5
        (no single process holds 5). The later database reading (4) is the gauge, not 7 + 4.
        Open connections sum the workers until one is gone; its counts stay, and a worker
        started after it adds to them."""
        first = ended(shared, 2, 2, 7)
        ended(shared, 3, 3, 4)
        text = scrape(shared)
        assert sample(text, EVENTS, **ACCEPTED) == 5
        assert sample(text, "aftercare_send_seconds_count") == 5
        assert sample(text, "aftercare_send_seconds_bucket", le="0.005") == 0
        assert sample(text, "aftercare_send_seconds_bucket", le="0.01") == 5
        for gauge in ("aftercare_pending_messages", "aftercare_notifications_pending"):
            assert sample(text, gauge) == 4, gauge
        assert sample(text, "aftercare_inbox_items_open", kind="escalation") == 4
        assert sample(text, "aftercare_ready") == 1
        assert sample(text, "aftercare_http_connections") == 5
        assert sample(text, "aftercare_paced_waiting") == 5

        process_gone(first)
        text = scrape(shared)
        assert sample(text, "aftercare_http_connections") == 3
        assert sample(text, EVENTS, **ACCEPTED) == 5
        assert sample(text, "aftercare_pending_messages") == 4

        ended(shared, 4, 1, 9)  # a worker started in its place
        text = scrape(shared)
        assert sample(text, EVENTS, **ACCEPTED) == 9
        assert sample(text, "aftercare_send_seconds_count") == 9
        assert sample(text, "aftercare_http_connections") == 4
        assert sample(text, "aftercare_pending_messages") == 9

    def test_process_series_are_each_live_workers(self, shared: Path) -> None:
        """`process_*` has one series per live worker, by `pid`; a worker gone has none."""
        with subprocess.Popen(
            [sys.executable, "-m", "tests.helpers.metrics_worker", "work", "1", "1", "1", "hold"],
            cwd=ROOT,
            env=environment(shared),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        ) as held:
            assert held.stdout is not None and held.stdin is not None
            pid = held.stdout.readline().strip()
            text = scrape(shared)
            assert (sample(text, "process_resident_memory_bytes", pid=pid) or 0) > 0
            assert sample(text, "process_cpu_seconds_total", pid=pid) is not None
            assert sample(text, "aftercare_http_connections") == 1
            held.stdin.write("done\n")  # let it end (leaving the block waits for that)
        process_gone(int(pid))
        text = scrape(shared)
        assert sample(text, "process_resident_memory_bytes", pid=pid) is None
        assert sample(text, "aftercare_http_connections") == 0


class TestExposition:
    def test_well_formed_and_the_single_process_series(self, shared: Path) -> None:
        """Each series once; the same families as one process renders, less `python_gc_*`."""
        ended(shared, 2, 2, 7)
        ended(shared, 3, 3, 4)
        # The worker that answers reads the database first, as `/metrics` does (web.ops).
        several = text_string_to_metric_families(worker(shared, "work", 0, 0, 4, "render").stdout)
        families = [f for f in several if f.samples]
        names = Tally(f.name for f in families)
        assert [n for n, k in names.items() if k > 1] == []
        series = Tally(
            (s.name, tuple(sorted(s.labels.items()))) for f in families for s in f.samples
        )
        assert [s for s, k in series.items() if k > 1] == []

        one = worker(None, "work", 2, 2, 7, "render").stdout
        alone = {f.name for f in text_string_to_metric_families(one) if f.samples}
        assert {n for n in alone if n.startswith("python_gc_")}
        assert set(names) == {n for n in alone if not n.startswith("python_gc_")}

    @pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not on PATH")
    def test_promtool_finds_nothing_to_say(self, shared: Path) -> None:
        """`promtool check metrics` passes the exposition of several workers."""
        ended(shared, 2, 2, 7)
        promtool = shutil.which("promtool")
        assert promtool
        result = subprocess.run(
            [promtool, "check", "metrics"],
            input=scrape(shared),
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


class TestOneProcess:
    def test_without_the_variable_a_process_renders_its_own(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """No PROMETHEUS_MULTIPROC_DIR (the default, one worker): a process's own counts, the
        process and GC collectors as before, no `pid` label, and `process_gone` does nothing."""
        text = worker(None, "work", 2, 2, 7, "render").stdout
        assert sample(text, EVENTS, **ACCEPTED) == 2
        assert (sample(text, "process_resident_memory_bytes") or 0) > 0
        assert sample(text, "python_gc_objects_collected_total", generation="0") is not None
        assert sample(text, "aftercare_pending_messages") == 7
        assert worker(None, "render").stdout.count(EVENTS + "{") == 0  # nothing of the first
        monkeypatch.delenv(MULTIPROC_DIR, raising=False)
        process_gone(os.getpid())  # the variable unset: nothing to forget, nothing raised
