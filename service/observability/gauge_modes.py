"""How each gauge adds up when several workers serve (docs/metrics.md, "With several
workers"): prometheus_client's `multiprocess_mode`, which a single process ignores."""

from __future__ import annotations

from typing import Final, Literal

# A gauge read from the database at a scrape: any worker's latest reading is the service's, so
# the most recent one wins (summed it would count the same rows once per worker; the highest
# would keep a reading long gone stale).
FROM_DATABASE: Final[Literal["mostrecent"]] = "mostrecent"
# A gauge of what one process holds (connections, paced messages): the service holds their sum
# over the workers still running; a worker that ended drops out (`metrics.process_gone`).
PER_PROCESS: Final[Literal["livesum"]] = "livesum"
