"""bench/run.py's view of a service that is a process tree (issue 28's `serve --workers N`):
CPU summed over the tree with a reaped worker's share kept, RSS per process, py-spy's
per-process stacks, `[server] workers` only when asked, and issue 28's targets table."""

from __future__ import annotations

import importlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.processes import ROOT

sys.path.insert(0, str(ROOT / "bench"))  # the bench's modules import each other by name
harness = importlib.import_module("harness")
machine = importlib.import_module("machine")
profile_top = importlib.import_module("profile_top")
report = importlib.import_module("report")

# A supervisor: one worker that burns 0.5 s of CPU (about that in clock ticks) and exits,
# waited for; one that stays, idle.
SUPERVISOR = """
import subprocess, sys, time
BURN = "import time\\nwhile time.process_time() < 0.5: pass"
burner = subprocess.Popen([sys.executable, "-c", BURN])
stayer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
burner.wait()
time.sleep(60)
"""


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    script = tmp_path / "supervisor.py"
    script.write_text(SUPERVISOR)
    process = subprocess.Popen([sys.executable, str(script)])
    try:
        yield process
    finally:
        for pid in reversed(machine.proc_tree(process.pid)):
            subprocess.run(["kill", "-9", str(pid)], check=False)
        process.wait(10)


def test_tree_cpu_keeps_a_reaped_workers_share_and_rss_is_per_process(
    supervisor: subprocess.Popen[bytes],
) -> None:
    pid = supervisor.pid
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if len(machine.proc_tree(pid)) == 2 and machine.tree_cpu(pid) >= 0.4:
            break
        time.sleep(0.05)
    tree = machine.proc_tree(pid)
    assert len(tree) == 2 and tree[0] == pid  # the burner was reaped, the stayer is listed
    reaped = machine.proc_cpu(pid, reaped=True) - machine.proc_cpu(pid)
    assert (
        reaped >= 0.4
    )  # (0.5 s burnt, in clock ticks) the exited worker's CPU moved into its supervisor's cutime
    assert machine.tree_cpu(pid) >= reaped
    rss = machine.tree_rss(pid)
    assert rss.processes == 2 and len(rss.children) == 1
    assert rss.largest == max(rss.root, rss.children[0])
    assert rss.total == pytest.approx(rss.root + rss.children[0])
    assert "supervisor" in rss.describe()


def test_a_single_process_is_its_own_tree() -> None:
    rss = machine.RssTree(98.0, ())
    assert (rss.largest, rss.total, rss.processes) == (98.0, 98.0, 1)
    assert rss.describe() == "98 MB"
    assert machine.tree_cpu(999_999_999) != machine.tree_cpu(999_999_999)  # gone: NaN


def test_profile_summary_takes_the_process_frames_off_and_counts_them() -> None:
    raw = (
        'process 10:"python -m service serve";process 11:"python -m service serve";'
        "claim (service/delivery/dispatch.py:5) 30\n"
        'process 10:"python -m service serve";wait_children (service/cli.py:9) 10\n'
    )
    summary = profile_top.summarize(raw)
    assert "by process:" in summary
    assert "75.0%  worker 11" in summary and "25.0%  supervisor" in summary
    assert "service/delivery" in summary  # the stack itself, parsed without its process frames


def test_workers_go_into_the_config_only_when_given() -> None:
    def server(workers: int | None) -> dict[str, object]:
        config = harness.service_config(
            ROOT,
            port=8000,
            db_url="sqlite+aiosqlite:///x.db",
            backend="console",
            twilio_url="",
            scheduler={},
            workers=workers,
        )
        return dict(config["server"])

    assert "workers" not in server(None)  # a tree from before the option refuses the key
    assert server(2)["workers"] == 2


def test_issue_28_targets_are_ratios_within_the_run_and_a_dash_when_missing() -> None:
    figures = {"burst_on:sqlite": 784.0, "burst_off:sqlite": 1366.0, "sqlite_tx": 543.0}
    table = report.issue_28_markdown(figures, ["sqlite"])
    burst = next(line for line in table.splitlines() if "drain with callbacks" in line)
    assert "784 msg/s ÷ 1,366 msg/s | 0.57 | ≥ 0.8 | **no**" in burst
    ingest = next(line for line in table.splitlines() if "ingest" in line)
    assert "— ÷ 543 tx/s | — |" in ingest and ingest.endswith("|  |")
