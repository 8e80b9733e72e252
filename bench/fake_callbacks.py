"""Twilio's return traffic for the bench's fake: signed status callbacks after each create.

For every message created with a StatusCallback URL, Twilio posts `sending`, `sent`, then
`delivered` (or `undelivered` with an ErrorCode), each a form POST signed with
X-Twilio-Signature (twilio's RequestValidator over the URL and the sorted form params, with
the account's auth token). The delays are drawn from configurable ranges. One message's
callbacks are posted in order (the next is armed only once the previous one was answered);
all of them share a bounded number of posters and keep-alive connections, so that the fake
stays cheap beside the service it measures. Twilio gives up on a webhook after 15 s: such a
callback, like a refused connection or an answer other than 2xx, counts as failed.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tests.fakes.twilio_wire import UNDELIVERED_CODE, callback_form, sign_twilio

TWILIO_TIMEOUT = 15.0  # seconds Twilio waits for a webhook's answer


def parse_range(text: str) -> tuple[float, float]:
    """'0.1-1' -> (0.1, 1.0); '0.5' -> (0.5, 0.5)."""
    low, _, high = text.partition("-")
    return float(low), float(high or low)


@dataclass
class Settings:
    """How the fake answers and calls back; changeable at run time (POST /_control/config)."""

    enabled: bool = True
    auth_token: str = "bench-auth-token"
    create_latency: tuple[float, float] = (0.0, 0.0)
    sending_delay: tuple[float, float] = (0.0, 0.05)
    sent_delay: tuple[float, float] = (0.1, 1.0)
    delivered_delay: tuple[float, float] = (1.0, 3.0)
    undelivered: float = 0.0
    concurrency: int = 32

    def update(self, query: dict[str, str]) -> None:
        """Apply `?callbacks=0&create_latency=0.1-0.3&...` from the control endpoint."""
        if "callbacks" in query:
            self.enabled = query["callbacks"] not in ("0", "false", "off")
        for key in ("create_latency", "sending_delay", "sent_delay", "delivered_delay"):
            if key in query:
                setattr(self, key, parse_range(query[key]))
        if "undelivered" in query:
            self.undelivered = float(query["undelivered"])

    def describe(self) -> dict[str, Any]:
        return {
            "callbacks": self.enabled,
            "create_latency": self.create_latency,
            "sending_delay": self.sending_delay,
            "sent_delay": self.sent_delay,
            "delivered_delay": self.delivered_delay,
            "undelivered": self.undelivered,
            "concurrency": self.concurrency,
        }


@dataclass
class Chain:
    """One message's callbacks still to post, with the params they share."""

    url: str
    params: dict[str, str]  # callback_form's keywords but the status
    steps: list[tuple[str, float]]  # (status, delay after the previous one)
    epoch: int


@dataclass
class Callbacks:
    """Arms, posts and records the status callbacks of every message created."""

    settings: Settings
    # (status, posted at, answered at or None, HTTP status or -1), time.time()
    records: list[tuple[str, float, float | None, int]] = field(default_factory=list)
    pending: int = 0
    epoch: int = 0
    _queue: asyncio.Queue[Chain] = field(default_factory=asyncio.Queue)
    _session: aiohttp.ClientSession | None = None
    _workers: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> None:
        """Open the keep-alive pool and the posters (inside the running loop)."""
        limit = self.settings.concurrency
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=limit),
            timeout=aiohttp.ClientTimeout(total=TWILIO_TIMEOUT),
        )
        self._workers = [asyncio.create_task(self._poster()) for _ in range(limit)]

    def created(self, *, url: str, sid: str, to: str, from_: str, account_sid: str) -> None:
        """A message was created with StatusCallback `url`: arm its callbacks."""
        if not (self.settings.enabled and url):
            return
        s = self.settings
        final = "undelivered" if random.random() < s.undelivered else "delivered"
        steps = [
            ("sending", random.uniform(*s.sending_delay)),
            ("sent", random.uniform(*s.sent_delay)),
            (final, random.uniform(*s.delivered_delay)),
        ]
        params = {"sid": sid, "account_sid": account_sid, "to": to, "from_": from_}
        self.pending += 1
        self._arm(Chain(url, params, steps, self.epoch))

    def _arm(self, chain: Chain) -> None:
        delay = chain.steps[0][1]
        asyncio.get_running_loop().call_later(delay, self._queue.put_nowait, chain)

    async def _poster(self) -> None:
        while True:
            chain = await self._queue.get()
            if chain.epoch != self.epoch:
                continue  # armed before a reset: forgotten with the rest
            status, _ = chain.steps.pop(0)
            await self._post(chain, status)
            if chain.steps and chain.epoch == self.epoch:
                self._arm(chain)
            elif chain.epoch == self.epoch:
                self.pending -= 1

    async def _post(self, chain: Chain, status: str) -> None:
        assert self._session is not None
        form = callback_form(
            **chain.params,
            status=status,
            error_code=UNDELIVERED_CODE if status == "undelivered" else None,
        )
        signature = sign_twilio(self.settings.auth_token, chain.url, form)
        posted, code = time.time(), -1
        answered: float | None = None
        try:
            async with self._session.post(
                chain.url, data=form, headers={"X-Twilio-Signature": signature}
            ) as r:
                await r.read()
                answered, code = time.time(), r.status
        except (aiohttp.ClientError, OSError, TimeoutError):
            pass  # Twilio gives up too (no retry for a status callback)
        if chain.epoch == self.epoch:
            self.records.append((status, posted, answered, code))

    def reset(self) -> None:
        """Forget every record and every callback still armed."""
        self.epoch += 1
        self.records.clear()
        self.pending = 0

    def counts(self) -> dict[str, Any]:
        """Posted, answered (2xx), failed, still to post (messages), by status."""
        ok = [r for r in self.records if 200 <= r[3] < 300]
        by_status: dict[str, int] = {}
        for r in ok:
            by_status[r[0]] = by_status.get(r[0], 0) + 1
        return {
            "posted": len(self.records),
            "answered": len(ok),
            "failed": len(self.records) - len(ok),
            "pending_messages": self.pending,
            "by_status": by_status,
            "settings": self.settings.describe(),
        }

    def detail(self) -> dict[str, Any]:
        """The counts plus every callback as [status, posted, answered, http status]."""
        return {**self.counts(), "callbacks": [list(r) for r in self.records]}


def add_traffic_options(p: argparse.ArgumentParser, *, create_latency: str) -> None:
    """The options shaping Twilio's answers and callbacks: the fake's and the bench's."""
    p.add_argument(
        "--create-latency",
        default=create_latency,
        metavar="S[-S]",
        help=f"seconds before a create is answered, drawn from the range ({create_latency})",
    )
    p.add_argument(
        "--sent-delay",
        default="0.1-1",
        metavar="S[-S]",
        help="'sending' answered -> 'sent' posted (0.1-1)",
    )
    p.add_argument(
        "--delivered-delay",
        default="1-3",
        metavar="S[-S]",
        help="'sent' answered -> 'delivered'/'undelivered' posted (1-3)",
    )
    p.add_argument(
        "--undelivered",
        type=float,
        default=0.0,
        help="share of messages that end 'undelivered', ErrorCode 30003 (0)",
    )
