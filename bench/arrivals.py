"""Messages due at known times, and what arrived of them at the fake Twilio: the rows a
dispatch run inserts (or the peer enqueues), and lateness, drain rate, duplicates."""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import seed
from harness import Context

AREAS = ("415", "212", "646", "310", "617")
BODY_TAG = re.compile(r"^\[(\w+)#(\d+)\]")


def phone(i: int, area: int = 0) -> str:
    """The i-th distinct phone number, in the `area`-th area code onwards."""
    return f"+1{AREAS[(area + i // 10000) % len(AREAS)]}555{i % 10000:04d}"


def dispatch_batch(label: str, send_at: Sequence[float], area: int) -> seed.Batch:
    """Rows for a dispatch run: a patient and treatment per message, each its own phone (the
    footer goes on each: every message is its number's first)."""

    def body(i: int) -> str:
        return (
            f"[{label}#{i}] Ana, time for your hyaluronic acid serum: apply a thin "
            f"layer to clean skin."
        )

    return seed.Batch(
        label=label, send_at=send_at, phone=partial(phone, area=area), body=body, per_treatment=1
    )


@dataclass
class Arrivals:
    expected: int
    lateness: list[float]  # of the arrived; see `all_lateness`
    arrivals: list[float]
    duplicates: int
    missing: int
    waited_until: float = math.nan
    misaddressed: int = 0
    back: dict[str, Any] | None = None  # the return traffic (callbacks.returned)

    @property
    def all_lateness(self) -> list[float]:
        """Every expected message's lateness; one that never arrived counts as infinite, so
        a percentile it reaches reads "never" rather than flattering the figure."""
        return self.lateness + [math.inf] * self.missing

    def drain_rate(self) -> float:
        """Messages/s from the first arrival to the last (to the end of the wait if some
        never arrived)."""
        if len(self.arrivals) < 2:
            return math.nan
        if self.missing:
            return len(self.arrivals) / (self.waited_until - self.arrivals[0])
        return (len(self.arrivals) - 1) / max(1e-9, self.arrivals[-1] - self.arrivals[0])

    def summary(self) -> str:
        return (
            f"{len(self.arrivals)}/{self.expected} arrived, {self.duplicates} sent twice, "
            f"{self.missing} never arrived, {self.misaddressed} to another number"
        )


async def wait_arrivals(ctx: Context, expected: int, deadline: float) -> None:
    while time.time() < deadline:
        if await ctx.fake.count(ctx.http) >= expected:
            return
        await asyncio.sleep(0.25)


async def collect(ctx: Context, batch: seed.Batch) -> Arrivals:
    """What the fake received of `batch`: each message's first arrival and lateness."""
    label, send_at = batch.label, batch.send_at
    seen: Counter[int] = Counter()
    lateness, arrivals = [], []
    firsts: list[tuple[int, float]] = []
    misaddressed = 0
    for m in await ctx.fake.messages(ctx.http):
        tag = BODY_TAG.match(m["body"])
        if not tag or tag.group(1) != label:
            continue
        i = int(tag.group(2))
        seen[i] += 1
        misaddressed += m["to"] != batch.phone(i - i % batch.per_treatment)
        if seen[i] == 1:
            lateness.append(m["at"] - send_at[i])
            firsts.append((i, lateness[-1]))
            arrivals.append(m["at"])
    if ctx.args.lateness_file:  # each message's send_at and lateness, to see when it was late
        with ctx.args.lateness_file.open("a") as out:
            out.writelines(f"{label} {send_at[i]:.6f} {late:.6f}\n" for i, late in firsts)
    return Arrivals(
        len(send_at),
        lateness,
        sorted(arrivals),
        sum(c - 1 for c in seen.values()),
        len(send_at) - len(seen),
        time.time(),
        misaddressed,
    )
