"""A clinic's `mps`: its sends paced at what its sender allows (docs/pacing.md).

A `Pace` is one sender's: the claims waiting for their turn, soonest first, and the instant
(monotonic seconds: the pace is kept at Twilio's door, in real time) its next create may
leave. `sort` decides, for a claim's batch, which messages wait for a turn, which could not
leave before their expiry at that pace (expired), and which are more than a pace may hold
within a lease (released unsent, claimed again once the queue has room).
"""

from __future__ import annotations

import asyncio
import collections
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

from service.config import ClinicSettings, Settings
from service.storage.claims import WAITED_FOR, Claim

Sender = tuple[str | None, str | None]  # (From, MessagingServiceSid) as a create carries them


@dataclass(eq=False)
class Pace:
    """One sender's pace: `gap` seconds between two creates, at most `cap` claims held."""

    gap: float
    cap: int
    clinics: frozenset[str]
    queue: collections.deque[Claim] = field(default_factory=collections.deque)
    first: int = 0  # the texts a person waits for, at the queue's head
    next_at: float = 0.0  # monotonic seconds: when the next create may leave
    task: asyncio.Task[None] | None = None  # the one that hands out turns while any wait

    def add(self, claim: Claim) -> None:
        """Queue `claim`: behind the others, or a text a person waits for behind the others
        of its kind only."""
        if claim.kind in WAITED_FOR:
            self.queue.insert(self.first, claim)
            self.first += 1
        else:
            self.queue.append(claim)

    def pop(self) -> Claim:
        """The claim whose turn it is."""
        self.first = max(0, self.first - 1)
        return self.queue.popleft()

    @property
    def full(self) -> bool:
        """Whether it holds as many claims as may leave within half a lease."""
        return len(self.queue) >= self.cap

    @property
    def low(self) -> int:
        """The queue's length at which to claim again: half the cap (a claim per message
        would cost a transaction each)."""
        return self.cap // 2

    def wait(self, mono: float) -> float:
        """Seconds until the next turn, from `mono`."""
        return max(0.0, self.next_at - mono)

    def left(self, mono: float) -> None:
        """A create left at `mono`: the next one waits a gap."""
        self.next_at = max(mono, self.next_at) + self.gap


def sender_of(clinic: ClinicSettings, settings: Settings) -> Sender:
    """What a create of `clinic`'s carries as its sender (as `wire.wire` sets it)."""
    service = clinic.messaging_service_sid or settings.twilio.messaging_service_sid or None
    return (clinic.from_number or None, service)


def paces(settings: Settings) -> dict[str, Pace]:
    """Each paced clinic's `Pace`: clinics that set `mps` and share a sender share one, at
    the smallest of their rates; clinics without `mps` are not paced. With `server.workers`
    at N, each worker paces at `mps / N`, so that the machine's sends stay at `mps`."""
    by_sender: dict[Sender, list[str]] = {}
    for clinic_id, clinic in settings.clinics.items():
        if clinic.mps is not None:
            by_sender.setdefault(sender_of(clinic, settings), []).append(clinic_id)
    lease = settings.scheduler.claim_lease.total_seconds()
    found: dict[str, Pace] = {}
    for ids in by_sender.values():
        mps = min(settings.clinics[i].mps or 0.0 for i in ids) / settings.server.worker_count()
        pace = Pace(gap=1 / mps, cap=max(1, math.floor(mps * lease / 2)), clinics=frozenset(ids))
        found.update(dict.fromkeys(ids, pace))
    return found


class Held(NamedTuple):
    """A pace as a claim finds it: its queue's length, and the turns (monotonic seconds) of
    the next text queued behind all the others and behind the texts a person waits for."""

    length: int
    tail: float  # the turn of a text queued behind all the others
    first_tail: float  # the turn of a text queued behind the others a person waits for


def held(pace: Pace, mono: float) -> Held:
    """`pace` as of `mono`. The turns are instants, not waits: they stay true while texts
    leave on time during the claim's transaction, so a claim that waited long for its
    transaction does not expire texts that the next claim would find in time."""
    start = max(pace.next_at, mono)
    return Held(
        len(pace.queue),
        start + len(pace.queue) * pace.gap,
        start + pace.first * pace.gap,
    )


@dataclass(slots=True)
class Sorted:
    """A batch of claims, sorted by their pace."""

    unpaced: list[Claim] = field(default_factory=list)
    queued: list[tuple[Pace, Claim]] = field(default_factory=list)  # soonest first
    late: list[Claim] = field(default_factory=list)  # could not leave before their expiry
    over: list[Claim] = field(default_factory=list)  # more than their pace holds: released


def sort(
    batch: Sequence[Claim],
    paced: Mapping[str, Pace],
    found: Mapping[Pace, Held],
    *,
    now: datetime,
    mono: float,
) -> Sorted:
    """Sort `batch` (soonest first): a paced message waits behind the ones its pace held
    (`found`, as `held` saw them before the claim) and leaves a gap after the one before it;
    it is late when that turn is not before its expiry, over when its pace holds `cap`
    already. An alert or a staff text waits only behind the others of its kind, and is never
    over. Pure: a transaction that runs it again gets the same answer."""
    out = Sorted()
    count = {pace: h.length for pace, h in found.items()}
    tail = {pace: h.tail for pace, h in found.items()}
    first_tail = {pace: h.first_tail for pace, h in found.items()}
    for claim in batch:
        pace = paced.get(claim.clinic_id)
        if pace is None:
            out.unpaced.append(claim)
            continue
        waited_for = claim.kind in WAITED_FOR  # never released; ahead of the others
        if not waited_for and count.get(pace, 0) >= pace.cap:
            out.over.append(claim)
            continue
        turn = (first_tail if waited_for else tail).get(pace, mono)
        leaves = now + timedelta(seconds=max(0.0, turn - mono))
        if leaves >= claim.expires_at:
            out.late.append(claim)  # takes no turn: the ones behind it keep theirs
            continue
        count[pace] = count.get(pace, 0) + 1
        tail[pace] = max(tail.get(pace, mono), mono) + pace.gap
        if waited_for:  # the others move back a turn
            first_tail[pace] = max(first_tail.get(pace, mono), mono) + pace.gap
        out.queued.append((pace, claim))
    return out
