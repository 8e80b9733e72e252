"""Prometheus metrics (contract §9), in a registry of the app's own: nothing global.

Counters and histograms are this process's (or every worker's: below); the per-status message
counts and the pending count are read from the database (shared by every replica) when
`/metrics` is scraped, unless the last count is recent for what it cost (`COUNT_BUDGET`):
counting a million rows takes the database a noticeable fraction of a second, and a scrape
every 15 s counting each time held an idle service at several times its idle CPU
(docs/benchmarks.md). The oldest scheduled `send_at` is read with them, and its age taken at
each scrape by the app's clock.

The registry also carries prometheus_client's process, platform and GC collectors. No
`*_created` series: prometheus_client's switch for them is process-global, so `Metrics()`
turns it off for every registry in the process (nothing of ours wants them).

With several workers (`serve --workers N`) the supervisor sets `PROMETHEUS_MULTIPROC_DIR` for
them, prometheus_client keeps every counter, histogram and gauge in a file per process there,
and a scrape of any worker renders all of them (docs/metrics.md, "With several workers"):
counters and histograms summed, the database's gauges the most recent reading, the per-process
gauges summed over live workers, `process_*` one series per live worker.
"""

from __future__ import annotations

import os
import re
import struct
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
    values,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from service.observability.gauge_modes import FROM_DATABASE, PER_PROCESS
from service.observability.inbox_metrics import InboxGauges

LATENESS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)
SEND_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# The database's counts are reused until they are this many times older than counting took:
# at most 1/200 of the time spent counting (a million rows: once in tens of seconds; a small
# database: every scrape but the ones a few milliseconds apart).
COUNT_BUDGET = 200
RENDER_TRIES = 3  # reads of the workers' files per scrape, should one be half-made
# Where prometheus_client keeps each process's values when several workers serve; set by the
# supervisor before it starts them (prometheus_client reads it once, at import).
MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
_LIVE_FILE = re.compile(rf"gauge_{PER_PROCESS}_(\d+)\.db")


def multiprocess() -> bool:
    """Whether this process keeps its metrics in `PROMETHEUS_MULTIPROC_DIR`'s files:
    prometheus_client chose so at import, from the variable, and does not change its mind."""
    return bool(getattr(values.ValueClass, "_multiprocess", False))


def process_gone(pid: int) -> None:
    """Forget the per-process gauges of worker `pid`, which has ended (its counters and
    histograms stay: they never go down). Nothing to do with a single process."""
    path = os.environ.get(MULTIPROC_DIR)
    if path:
        mark_process_dead(pid, path)  # type: ignore[no-untyped-call]


class _StoredCounts(Collector):
    """Messages by status, as last read from the database."""

    def __init__(self) -> None:
        self.by_status: dict[str, int] = {}
        self.counted_at: float | None = None  # time.monotonic() when last counted
        self.took = 0.0  # seconds that count took
        self.oldest_scheduled: datetime | None = None  # earliest send_at still scheduled

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "aftercare_messages", "Messages by status (database)", labels=["status"]
        )
        for status, count in sorted(self.by_status.items()):
            family.add_metric([status], count)
        yield family


class _WriterQueues(Collector):
    """Items waiting in each group commit (and writes waiting at the writer gate)."""

    def __init__(self) -> None:
        self.sources: dict[str, Callable[[], int]] = {}

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "aftercare_writer_queue",
            "Items waiting for the database writer, by queue",
            labels=["queue"],
        )
        for name, waiting in sorted(self.sources.items()):
            family.add_metric([name], waiting())
        yield family


class _WorkerProcesses(Collector):
    """`process_*` of every live worker, one series each by `pid` (several workers only): the
    answering worker's alone would pass for the service's, and its CPU counter would seem to
    reset whenever another worker answered."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def pids(self) -> list[int]:
        """The workers that have not ended: those whose per-process gauges are still kept."""
        found = {int(m[1]) for f in self.path.iterdir() if (m := _LIVE_FILE.fullmatch(f.name))}
        return sorted(found | {os.getpid()})

    def collect(self) -> Iterable[Metric]:
        families: dict[str, Metric] = {}
        for pid in self.pids():
            for family in ProcessCollector(pid=_constant(pid), registry=None).collect():
                merged = families.setdefault(
                    family.name, Metric(family.name, family.documentation, family.type)
                )
                for s in family.samples:
                    merged.add_sample(s.name, {**s.labels, "pid": str(pid)}, s.value)
        yield from families.values()


class Metrics:
    """Everything Aftercare measures, registered in one registry (`registry`); `/metrics`
    renders it, or with several workers every worker's files and the collectors of our own."""

    def __init__(self) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # process-global: see above
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._exposed = self._exposition(r)
        self._sends(r)
        self._return_path(r)
        self._operations(r)
        self._notifications(r)
        self._escalations(r)
        self.inbox = InboxGauges(r)
        self.console_sign_ins = Counter(
            "aftercare_console_sign_ins_total",
            "Staff console sign-ins by outcome (ok, failed, locked, throttled)",
            ["outcome"],
            registry=r,
        )
        self.background_failures = Counter(
            "aftercare_background_failures_total",
            "Failures of background tasks (sends, writers, timers, sweeps, loops) by task",
            ["task"],
            registry=r,
        )
        self.pruned = Counter(
            "aftercare_retention_pruned_total",
            "Rows deleted by [retention] (contract §19), by table",
            ["table"],
            registry=r,
        )
        self._stored = _StoredCounts()
        self._exposed.register(self._stored)
        self._queues = _WriterQueues()
        self._exposed.register(self._queues)

    @staticmethod
    def _exposition(r: CollectorRegistry) -> CollectorRegistry:
        """The registry `/metrics` renders. One process: `r` itself, with the process, platform
        and GC collectors. Several workers: a second one reading every worker's files (the
        metrics registered in `r` are in them), `process_*` by worker and `python_info` (the
        same in every worker); no `python_gc_*`, which say nothing of the service as a whole."""
        if not multiprocess():
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
            GCCollector(registry=r)
            return r
        # Not described by collecting at registration: that would read every worker's files
        # while another worker may be creating its own (a race that failed a worker's start).
        exposed = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(exposed)  # type: ignore[no-untyped-call]
        exposed.register(_WorkerProcesses(os.environ[MULTIPROC_DIR]))
        PlatformCollector(registry=exposed)
        return exposed

    def _sends(self, r: CollectorRegistry) -> None:
        """Events in, and the way out: sends, their time and lateness, Twilio's errors."""
        self.events = Counter(
            "aftercare_events_total", "Clinic events received", ["type", "outcome"], registry=r
        )
        self.sends = Counter("aftercare_sends_total", "Send outcomes", ["outcome"], registry=r)
        self.segments = Counter(
            "aftercare_segments_sent_total",
            "SMS segments Twilio accepted, by kind",
            ["kind"],
            registry=r,
        )
        self.send_seconds = Histogram(
            "aftercare_send_seconds",
            "Duration of a provider call",
            buckets=SEND_BUCKETS,
            registry=r,
        )
        self.lateness = Histogram(
            "aftercare_lateness_seconds",
            "Actual send time minus planned send_at",
            buckets=LATENESS_BUCKETS,
            registry=r,
        )
        self.twilio_errors = Counter(
            "aftercare_twilio_errors_total", "Twilio errors by code", ["code"], registry=r
        )
        self.recoveries = Counter(
            "aftercare_claim_recoveries_total", "Expired claims reconciled", ["result"], registry=r
        )
        self.paced_waiting = Gauge(
            "aftercare_paced_waiting",
            "Claimed messages waiting for their sender's pace (a clinic's mps)",
            registry=r,
            multiprocess_mode=PER_PROCESS,
        )
        self.paced_expired = Counter(
            "aftercare_paced_expired_total",
            "Messages expired because they could not leave before their expiry at their "
            "sender's pace (a clinic's mps)",
            registry=r,
        )
        self.pending = Gauge(
            "aftercare_pending_messages",
            "Messages scheduled or being sent (database)",
            registry=r,
            multiprocess_mode=FROM_DATABASE,
        )

    def _return_path(self, r: CollectorRegistry) -> None:
        """Twilio's status callbacks and patients' replies."""
        self.callbacks = Counter(
            "aftercare_callbacks_total",
            "Twilio status callbacks by status and outcome",
            ["status", "outcome"],
            registry=r,
        )
        self.callback_seconds = Histogram(
            "aftercare_callback_seconds",
            "A status callback's arrival to durable",
            buckets=SEND_BUCKETS,
            registry=r,
        )
        self.replies = Counter(
            "aftercare_replies_total", "Patients' replies by keyword", ["keyword"], registry=r
        )
        self.replies_skipped = Counter(
            "aftercare_replies_skipped_total",
            "Inbound texts not acted on: Twilio's retries (retry), a From that is no number"
            " (sender), a malformed MessageSid (sid)",
            ["reason"],
            registry=r,
        )

    def _operations(self, r: CollectorRegistry) -> None:
        """HTTP requests, and what the database says at a scrape."""
        self.http_seconds = Histogram(
            "aftercare_http_request_duration_seconds",
            "HTTP requests by matched route, method and status",
            ["route", "method", "status"],
            buckets=HTTP_BUCKETS,
            registry=r,
        )
        # The edge (docs/edge.md): what `serve` holds open, and what it turned away.
        self.connections = Gauge(
            "aftercare_http_connections",
            "HTTP connections open",
            registry=r,
            multiprocess_mode=PER_PROCESS,
        )
        self.connections_refused = Counter(
            "aftercare_http_connections_refused",
            "Connections closed at once because server.max_connections were open",
            registry=r,
        )
        self.oldest_overdue = Gauge(
            "aftercare_oldest_overdue_seconds",
            "Age of the oldest scheduled message past its due time (database; 0 when none)",
            registry=r,
            multiprocess_mode=FROM_DATABASE,
        )
        self.ready = Gauge(
            "aftercare_ready",
            "1 when the database answers and the scheduler runs, else 0",
            registry=r,
            multiprocess_mode=FROM_DATABASE,
        )

    def _notifications(self, r: CollectorRegistry) -> None:
        """Notifications to clinic systems (contract §11): attempts, and the outbox at a scrape."""
        self.notifications = Counter(
            "aftercare_notifications_total",
            "Notification attempts by type and outcome (delivered, retried, gave_up, no_endpoint)",
            ["type", "outcome"],
            registry=r,
        )
        self.notifications_pending = Gauge(
            "aftercare_notifications_pending",
            "Notifications not yet delivered nor given up (database)",
            registry=r,
            multiprocess_mode=FROM_DATABASE,
        )
        self.oldest_notification = Gauge(
            "aftercare_oldest_pending_notification_seconds",
            "Age of the oldest pending notification (database; 0 when none)",
            registry=r,
            multiprocess_mode=FROM_DATABASE,
        )
        self._oldest_pending: datetime | None = None

    def _escalations(self, r: CollectorRegistry) -> None:
        """Escalations (contract §10) at a scrape: patients' replies that wait for a person."""
        self.escalations_open = Gauge(
            "aftercare_escalations_open",
            "Escalations not yet acknowledged (database)",
            registry=r,
            multiprocess_mode=FROM_DATABASE,
        )
        self.oldest_escalation = Gauge(
            "aftercare_oldest_open_escalation_seconds",
            "Age of the oldest escalation not yet acknowledged (database; 0 when none)",
            registry=r,
            multiprocess_mode=FROM_DATABASE,
        )
        self._oldest_open: datetime | None = None

    def set_escalations(self, open_: int, *, oldest: datetime | None) -> None:
        """Record how many escalations are open and when the oldest of them was opened."""
        self.escalations_open.set(open_)
        self._oldest_open = oldest

    def set_notifications(self, pending: int, *, oldest: datetime | None) -> None:
        """Record the outbox's pending count and its oldest pending row's creation time."""
        self.notifications_pending.set(pending)
        self._oldest_pending = oldest

    def watch_queue(self, name: str, waiting: Callable[[], int]) -> None:
        """Report `waiting()` as the depth of the writer queue `name` at each scrape."""
        self._queues.sources[name] = waiting

    def stored_due(self, now: float) -> bool:
        """Whether to count messages by status again before a scrape at `now` (monotonic s)."""
        last = self._stored.counted_at
        return last is None or now - last >= self._stored.took * COUNT_BUDGET

    def set_stored(
        self,
        by_status: Mapping[str, int],
        *,
        counted_at: float,
        took: float,
        oldest_scheduled: datetime | None = None,
    ) -> None:
        """Record the database's per-status counts and earliest scheduled `send_at`, read at
        `counted_at` in `took` s."""
        self._stored.by_status = dict(by_status)
        self._stored.oldest_scheduled = oldest_scheduled
        self._stored.counted_at, self._stored.took = counted_at, took
        self.pending.set(by_status.get("scheduled", 0) + by_status.get("sending", 0))

    def set_scrape(self, *, now: datetime, ready: bool) -> None:
        """Set what a scrape at `now` reads: readiness, and the age of the oldest scheduled
        message whose `send_at` has passed. Between two counts that age keeps growing: it is
        at most one count's reuse too old if that message has been sent since."""
        self.oldest_overdue.set(_age(now, self._stored.oldest_scheduled))
        self.oldest_notification.set(_age(now, self._oldest_pending))
        self.oldest_escalation.set(_age(now, self._oldest_open))
        self.inbox.at(now)
        self.ready.set(1 if ready else 0)

    def render(self) -> bytes:
        """The Prometheus text exposition: this process's, or with several workers theirs.
        A worker's file read in the instant it is created (a worker starting) can fail to
        parse: read again, a few times, rather than fail the scrape."""
        for _ in range(RENDER_TRIES - 1):
            try:
                return bytes(generate_latest(self._exposed))
            except (struct.error, ValueError):
                time.sleep(0.01)
        return bytes(generate_latest(self._exposed))


def _constant(pid: int) -> Callable[[], int]:
    """`pid`, as ProcessCollector asks for it."""
    return lambda: pid


def _age(now: datetime, since: datetime | None) -> float:
    """Seconds from `since` to `now` (0 for none, or one in the future)."""
    return 0.0 if since is None else max(0.0, (now - since).total_seconds())
