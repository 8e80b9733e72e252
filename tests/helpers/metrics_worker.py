"""One process's share of `/metrics` with several workers (tests/test_metrics_multiprocess.py):
prometheus_client picks its multiprocess mode at import, so each worker is a real process.

    python -m tests.helpers.metrics_worker work EVENTS CONNECTIONS PENDING [render|hold]
    python -m tests.helpers.metrics_worker render

`work` counts EVENTS accepted events and as many 0.01 s sends, holds CONNECTIONS open, reads
PENDING scheduled messages "from the database" (and sets every other database gauge), prints its
pid, then exits, prints its own `/metrics` (`render`), or waits for a line on stdin (`hold`).
`render` only renders, as the worker a scrape reaches would."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime

from service.observability.metrics import Metrics

NOW = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)


def work(metrics: Metrics, events: int, connections: int, pending: int) -> None:
    """This worker's requests, sends and connections, and one reading of the database."""
    for _ in range(events):
        metrics.events.labels(type="procedure_completed", outcome="accepted").inc()
        metrics.send_seconds.observe(0.01)
    metrics.connections.set(connections)
    metrics.paced_waiting.set(connections)
    metrics.set_stored({"scheduled": pending}, counted_at=0.0, took=0.0, oldest_scheduled=NOW)
    metrics.set_notifications(pending, oldest=NOW)
    metrics.set_escalations(pending, oldest=NOW)
    metrics.inbox.set_counts({"escalation": pending}, oldest=NOW, deadlines=[NOW])
    metrics.set_scrape(now=NOW, ready=True)


def main(argv: list[str]) -> None:
    metrics = Metrics()
    if argv[0] == "work":
        work(metrics, *(int(a) for a in argv[1:4]))
    then = argv[4] if argv[0] == "work" and len(argv) > 4 else argv[0]
    if then == "render":
        sys.stdout.write(metrics.render().decode())
        return
    print(os.getpid(), flush=True)
    if then == "hold":
        sys.stdin.readline()


if __name__ == "__main__":
    main(sys.argv[1:])
