"""The console inbox's gauges (contract §16), read from the database at a scrape (`web.ops`):
open items, the oldest one's age, and the clinics whose oldest open escalation has waited
longer than twice their `escalation_reminder` (what deploy/alerts.yml pages on)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from prometheus_client import CollectorRegistry, Gauge

from service.observability.gauge_modes import FROM_DATABASE


class InboxGauges:
    """Open inbox items, the oldest one's age, and clinics with an urgent item overdue."""

    def __init__(self, r: CollectorRegistry) -> None:
        self.open = Gauge(
            "aftercare_inbox_items_open",
            "Console inbox items not yet handled, by kind (database)",
            ["kind"],
            registry=r,
            multiprocess_mode=FROM_DATABASE,
        )
        self.oldest = Gauge(
            "aftercare_oldest_inbox_item_seconds",
            "Age of the oldest console inbox item not yet handled (database; 0 when none)",
            registry=r,
            multiprocess_mode=FROM_DATABASE,
        )
        self.overdue = Gauge(
            "aftercare_inbox_urgent_overdue_clinics",
            "Clinics whose oldest open escalation has waited longer than twice the clinic's "
            "escalation_reminder (database)",
            registry=r,
            multiprocess_mode=FROM_DATABASE,
        )
        self._oldest: datetime | None = None
        self._deadlines: list[datetime] = []

    def set_counts(
        self, open_: dict[str, int], *, oldest: datetime | None, deadlines: Iterable[datetime]
    ) -> None:
        """Record the open items by kind, the oldest item's time, and for each clinic with
        an open escalation the instant it becomes overdue."""
        for kind, count in open_.items():
            self.open.labels(kind=kind).set(count)
        self._oldest, self._deadlines = oldest, list(deadlines)

    def at(self, now: datetime) -> None:
        """Set the ages a scrape at `now` reads (they grow between two counts)."""
        self.oldest.set(
            0.0 if self._oldest is None else max(0.0, (now - self._oldest).total_seconds())
        )
        self.overdue.set(sum(1 for d in self._deadlines if d <= now))
