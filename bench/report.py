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
    if scheduler:
        print(f"scheduler overrides for dispatch runs: {scheduler}")
    print()
    print(report.markdown())
    print()
    for note in report.notes:
        print(f"- {note}")
