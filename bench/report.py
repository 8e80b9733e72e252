"""What a run says: progress lines on stderr, the results table with its targets, the notes,
and the report printed at the end (its format is quoted in bench/README.md and docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import callbacks


def log(text: str) -> None:
    """A progress line on stderr, with the time."""
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1) of `values`."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]


@dataclass
class Row:
    """One figure of the table, with its target and whether it was met."""

    scenario: str
    metric: str
    value: float | None
    unit: str
    target: str = ""
    ok: bool | None = None

    def measured(self) -> str:
        if self.value is None or (isinstance(self.value, float) and math.isnan(self.value)):
            return "n/a"
        v = self.value
        if math.isinf(v):
            return "never (not all arrived)"
        text = f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.1f}" if abs(v) >= 10 else f"{v:.2f}"
        return f"{text} {self.unit}".strip()


@dataclass
class Report:
    """The rows and notes a run collects."""

    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # The figures issue 28's targets compare, by key ("burst_on:sqlite", "peer_steady_p99",
    # ...; see ISSUE_28), and the service's processes at the end of each measured window.
    figures: dict[str, float] = field(default_factory=dict)
    processes: dict[str, int] = field(default_factory=dict)

    def add(
        self,
        scenario: str,
        metric: str,
        value: float | None,
        unit: str,
        target: tuple[str, float] | None = None,
    ) -> None:
        """`target` is ("<=" or ">=", bound), in the same unit as `value`."""
        if target is None:
            self.rows.append(Row(scenario, metric, value, unit))
            return
        op, bound = target
        ok = None
        if value is not None and not math.isnan(value):
            ok = value <= bound if op == "<=" else value >= bound
        bound_text = f"{bound:,.0f}" if bound >= 100 else f"{bound:g}"
        self.rows.append(Row(scenario, metric, value, unit, f"{op} {bound_text} {unit}", ok))

    def note(self, text: str) -> None:
        log(text)
        self.notes.append(text)

    def markdown(self) -> str:
        lines = [
            "| Scenario | Metric | Measured | Target (issue 5) | Met |",
            "|---|---|---:|---:|:---:|",
        ]
        for r in self.rows:
            met = "" if r.ok is None and not r.target else ("yes" if r.ok else "**no**")
            lines.append(f"| {r.scenario} | {r.metric} | {r.measured()} | {r.target} | {met} |")
        return "\n".join(lines)


DASH = "—"


def processes(count: int) -> str:
    """ "1 process", "3 processes": how many a service's tree had."""
    return f"{count} process" + ("" if count == 1 else "es")


@dataclass(frozen=True)
class Target:
    """One of issue 28's targets: a figure (or a ratio of two) of this run against a bound."""

    what: str
    top: str  # figure key, "{db}" replaced by the database's kind
    bottom: str | None  # the ratio's divisor, or None for the figure itself
    units: tuple[str, str]  # of `top`, `bottom`
    op: str
    bound: float
    unit: str = ""  # of the value judged


ISSUE_28 = (
    Target(
        "burst due at once: drain with callbacks ÷ without",
        "burst_on:{db}",
        "burst_off:{db}",
        ("msg/s", "msg/s"),
        ">=",
        0.8,
    ),
    Target(
        "mixed (events in, sends out, callbacks back): lateness p99",
        "mixed_p99:{db}",
        None,
        ("ms", ""),
        "<=",
        100,
        "ms",
    ),
    Target(
        "ingest events/s ÷ SQLite's 35-row transactions/s (calibration)",
        "ingest:{db}",
        "sqlite_tx",
        ("ev/s", "tx/s"),
        ">=",
        1.5,
    ),
    Target(
        "steady p99 ÷ the Celery peer's steady p99",
        "steady_p99:{db}",
        "peer_steady_p99",
        ("ms", "ms"),
        "<=",
        2,
    ),
    Target(
        "pending: RSS per process (largest) after the load",
        "pending_rss:{db}",
        None,
        ("MB", ""),
        "<=",
        150,
        "MB",
    ),
    Target(
        "pending: restart to ready (worst)", "pending_restart:{db}", None, ("s", ""), "<=", 3, "s"
    ),
)


def _number(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def _figure(figures: dict[str, float], key: str | None) -> float | None:
    value = figures.get(key) if key else None
    return None if value is None or math.isnan(value) else value


def issue_28_markdown(figures: dict[str, float], kinds: Sequence[str]) -> str:
    """Issue 28's targets, each from this run's figures, per database; a figure a ratio
    needs that this run did not measure (its phase not run) shows as a dash."""
    lines = [
        "| Target (issue 28) | Database | Figures (this run) | Measured | Target | Met |",
        "|---|---|---:|---:|---:|:---:|",
    ]
    for t in ISSUE_28:
        for kind in kinds:
            top = _figure(figures, t.top.format(db=kind))
            bottom = _figure(figures, t.bottom.format(db=kind)) if t.bottom else None
            value = top if t.bottom is None else (top / bottom if top and bottom else None)
            shown = ""  # a ratio's two figures; a single figure is only "Measured"
            if t.bottom:
                shown = (DASH if top is None else f"{_number(top)} {t.units[0]}") + " ÷ "
                shown += DASH if bottom is None else f"{_number(bottom)} {t.units[1]}"
            measured = DASH if value is None else f"{_number(value)} {t.unit}".strip()
            met = "" if value is None else "yes" if _meets(value, t.op, t.bound) else "**no**"
            target = f"{'≥' if t.op == '>=' else '≤'} {t.bound:g} {t.unit}".strip()
            lines.append(f"| {t.what} | {kind} | {shown} | {measured} | {target} | {met} |")
    return "\n".join(lines)


def _meets(value: float, op: str, bound: float) -> bool:
    return value >= bound if op == ">=" else value <= bound


def workers_header(args: argparse.Namespace, processes: dict[str, int]) -> str:
    """The header's line on the service's processes: --workers, and the trees seen."""
    workers = getattr(args, "workers", None)
    given = (
        f"--workers {workers} ([server] workers = {workers})"
        if workers is not None
        else "no --workers (the config has no [server] workers: the tree's default)"
    )
    seen = sorted(set(processes.values()))
    counted = (
        f"; processes in the service's tree at the end of each measured window: "
        f"{', '.join(map(str, seen))} (CPU is the tree's sum; RSS per process)"
        if seen
        else ""
    )
    return f"service: {given}{counted}"


def print_report(
    args: argparse.Namespace,
    report: Report,
    scheduler: dict[str, Any],
    *,
    minutes: float,
    speed: str,
    machine: str,
    revision: str,
) -> None:
    """The header (machine, revision, speed, return traffic), the table, then the notes."""
    print()
    print(
        f"Aftercare benchmarks — {machine}; revision {revision}; "
        f"{'quick' if args.quick else 'full'} run in {minutes:.1f} min"
    )
    print(speed)
    print(callbacks.header(args))
    print(workers_header(args, report.processes))
    if scheduler:
        print(f"scheduler overrides for dispatch runs: {scheduler}")
    print()
    print(report.markdown())
    print()
    kinds = [k.strip() for k in args.databases.split(",") if k.strip()]
    print(issue_28_markdown(report.figures, kinds))
    print()
    for note in report.notes:
        print(f"- {note}")
