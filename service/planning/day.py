"""The patient's day: which messages go as one text (merging) and which a daily limit skips;
pure (docs/day.md).

It takes plain values (`Due`: an id, a kind, a UTC send time) and returns plain values: no
settings, no clock, no rows. Storage hands it a patient's scheduled messages at one clinic and
writes back what it decides; `preview` and the answer to `treatment.completed` show it.

- `merge_groups`: messages due within `window` of a group's earliest (inclusive) join that
  group, which goes at the earliest's time; `alert` and `staff` messages are never merged.
- `over_limit`: per local day (the patient's zone) of a group's send time, past `limit` texts
  (a group counts once) the lowest-ranked group is skipped whole, again until the day fits:
  `rebook` goes first, then `serum`, `prep`, `aftercare`, `checkin`. A group ranks as its
  highest-ranked member; of two of one rank the later goes first. `alert` and `staff` never
  count nor skip. A message that has gone out already counts on its day, and stays.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Generic, TypeVar
from zoneinfo import ZoneInfo

__all__ = [
    "DAILY_LIMIT_REASON",
    "NEVER_LIMITED",
    "RANK",
    "Due",
    "merge_groups",
    "merged_into",
    "over_limit",
]

DAILY_LIMIT_REASON = "daily limit"
"""The reason of a message the daily limit left unsent (storage's `reasons` uses it)."""

RANK = {"rebook": 0, "serum": 1, "prep": 2, "aftercare": 3, "checkin": 4}
"""A kind's rank: the lowest goes first when a day is over the limit."""

NEVER_LIMITED = frozenset({"alert", "staff"})
"""Kinds that are never merged, never counted and never skipped."""

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Due(Generic[K]):
    """A message of the patient's day: its id (any key), kind and send time (aware); `gone`:
    it has gone out already (or is going), so it counts but is never merged nor skipped."""

    id: K
    kind: str
    send_at: datetime
    gone: bool = False


def merge_groups(messages: Iterable[Due[K]], window: timedelta) -> list[list[Due[K]]]:
    """The texts `messages` (one patient's, at one clinic) go as, in time order.

    Each group starts at the earliest message not yet grouped and takes every later one due
    within `window` of it, in time order (ties keep the order given: plan order). `alert` and
    `staff` messages are groups of their own; a `window` of zero merges nothing.
    """
    ordered = sorted(messages, key=lambda m: m.send_at)  # stable: plan order on ties
    groups: list[list[Due[K]]] = []
    open_group: list[Due[K]] | None = None
    for m in ordered:
        if m.kind in NEVER_LIMITED or m.gone:
            groups.append([m])
            continue
        if (
            open_group is not None
            and window > timedelta(0)
            and m.send_at - open_group[0].send_at <= window
        ):
            open_group.append(m)
            continue
        open_group = [m]
        groups.append(open_group)
    return groups


def merged_into(messages: Iterable[Due[K]], window: timedelta) -> dict[K, K]:
    """For each message that merges into another's text, the id of that group's first."""
    if window <= timedelta(0):
        return {}  # merging off: the common case, on the hot path of every new plan
    return {m.id: group[0].id for group in merge_groups(messages, window) for m in group[1:]}


def over_limit(
    messages: Sequence[Due[K]], *, limit: int | None, window: timedelta, tz: ZoneInfo
) -> set[K]:
    """The ids the daily `limit` skips among `messages` (one patient's scheduled messages at
    one clinic); none without a limit. A day at or under it is left as it is."""
    if limit is None:
        return set()
    days: dict[date, list[list[Due[K]]]] = defaultdict(list)
    for group in merge_groups(messages, window):
        if group[0].kind not in NEVER_LIMITED:
            days[group[0].send_at.astimezone(tz).date()].append(group)
    skipped: set[K] = set()
    for groups in days.values():
        if len(groups) <= limit:
            continue
        # Lowest rank first; of one rank, the later first. What has gone out stays.
        doomed = sorted(
            (g for g in groups if not g[0].gone),
            key=lambda g: (_rank(g), -g[0].send_at.timestamp()),
        )
        for group in doomed[: len(groups) - limit]:
            skipped.update(m.id for m in group)
    return skipped


def _rank(group: Sequence[Due[K]]) -> int:
    return max(RANK.get(m.kind, len(RANK)) for m in group)
