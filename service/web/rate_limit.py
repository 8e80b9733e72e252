"""Each clinic's events are admitted at its `rate_limit` (contract §14, "The edge"; docs/edge.md).

A token bucket per clinic, in this process: it holds up to `burst` events (twice the rate's
count) and refills at the rate. With N replicas behind a balancer the clinic may send N times
its rate in all; a proxy in front that must hold a fleet-wide limit keys it on the path's
clinic id. The clock is injected (monotonic seconds) so tests step it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping

from service.config import Rate, Settings, parse_rate


class TokenBucket:
    """Up to `rate.burst` tokens, refilled at `rate.per_second`; one token an event."""

    def __init__(self, rate: Rate, *, now: float) -> None:
        self.rate = rate
        self.tokens = float(rate.burst)
        self.updated = now

    def take(self, now: float) -> float:
        """0.0 and one token taken if one is there; else the seconds until one will be."""
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(float(self.rate.burst), self.tokens + elapsed * self.rate.per_second)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate.per_second


class RateLimits:
    """One bucket per clinic; `admit` says whether an event may be handled now."""

    def __init__(
        self, rates: Mapping[str, Rate], *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.clock = clock
        start = clock()
        self.buckets = {cid: TokenBucket(rate, now=start) for cid, rate in rates.items()}

    @classmethod
    def of(cls, settings: Settings) -> RateLimits:
        """The buckets of every configured clinic, full."""
        return cls({cid: parse_rate(c.rate_limit) for cid, c in settings.clinics.items()})

    def admit(self, clinic_id: str) -> int:
        """0 if the clinic's event is admitted (and counted); else the whole seconds, at
        least 1, after which one would be: the answer's `Retry-After`."""
        bucket = self.buckets.get(clinic_id)
        if bucket is None:
            return 0  # not a configured clinic: refused before, by its signature
        wait = bucket.take(self.clock())
        return 0 if wait == 0.0 else max(1, math.ceil(wait))
