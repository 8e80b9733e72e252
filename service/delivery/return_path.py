"""The return path: Twilio's status callbacks and patients' replies, written by group commit.

Whatever arrives while a write runs goes in the next one, one transaction for the lot; each
webhook is answered only once its item is durable. Callbacks for one sid may share a batch
and are applied in order of arrival (`storage.callback_rows`); replies from one number, or two
copies of one MessageSid, never share one (keys), so a batch holds independent replies, each
given to the conversation's store function (`ReplyHandler`) in one `Transactions.write`. The
writes are `background` at the writer gate: claims and send outcomes go first, and a batch is
capped so that one write stays short.

A batch that fails is written again one item at a time, so one bad item fails its own
webhook alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import TypeVar

from service.clock import Clock
from service.config import Settings
from service.delivery import replies
from service.delivery.replies import Handled, Reply, ReplyHandler
from service.observability.masking import mask_phone
from service.observability.metrics import Metrics
from service.observability.supervision import Supervisor
from service.storage import callback_rows, notices
from service.storage.callback_rows import Callback, Outcome
from service.storage.group_commit import GroupCommit
from service.storage.transactions import Session, Transactions

log = logging.getLogger("aftercare.return_path")
# A callback batch of 200 is a short write on SQLite (docs/benchmarks.md): what a claim may
# wait behind it.
CALLBACK_BATCH = 200
REPLY_BATCH = 50

Item = TypeVar("Item")
Result = TypeVar("Result")


class ReturnPath:
    """Status callbacks and replies, batched; the webhooks' handlers call `status`, `reply`."""

    def __init__(
        self,
        *,
        settings: Settings,
        transactions: Transactions,
        clock: Clock,
        metrics: Metrics,
        handle_reply: ReplyHandler,
    ) -> None:
        self.settings = settings
        self.transactions = transactions
        self.handle_reply = handle_reply
        self.clock = clock
        self.metrics = metrics
        self.audience = notices.Audience(settings)
        spawn = Supervisor(metrics).spawn
        self._callbacks: GroupCommit[Callback, Outcome | Exception] = GroupCommit(
            self._write_callbacks,
            batch=CALLBACK_BATCH,
            keys=lambda _: (),
            spawn=partial(spawn, task="callbacks"),
        )
        self._replies: GroupCommit[Reply, Handled | Exception] = GroupCommit(
            self._write_replies,
            batch=REPLY_BATCH,
            keys=_reply_keys,
            spawn=partial(spawn, task="replies"),
        )
        metrics.watch_queue("callbacks", lambda: self._callbacks.waiting)
        metrics.watch_queue("replies", lambda: self._replies.waiting)

    async def status(self, *, sid: str, status: str, code: int | None) -> Outcome:
        """Keep a status callback and move its message forward; once durable, what became
        of it. `queued`, `accepted` and `sending` add nothing and write nothing."""
        target = replies.PROVIDER_STATUS.get(status)
        if target is None or not sid:
            self.metrics.callbacks.labels(status[:16] or "none", Outcome.IGNORED).inc()
            return Outcome.IGNORED
        started = time.monotonic()
        outcome = _raised(
            await self._callbacks.submit(Callback(sid[:64], target, code, self.clock.now()))
        )
        self.metrics.callback_seconds.observe(time.monotonic() - started)
        self.metrics.callbacks.labels(target, outcome).inc()
        if outcome is Outcome.EARLY:
            log.info("status for a sid not (yet) recorded", extra={"sid": sid, "status": status})
        return outcome

    async def reply(self, reply: Reply) -> Handled:
        """Record a reply and act on it, once durable; the answer and the messages to arm."""
        handled = _raised(await self._replies.submit(reply))
        if handled.again:
            self.metrics.replies_skipped.labels("retry").inc()
        else:
            self.metrics.replies.labels(handled.keyword or "none").inc()
        return handled

    def refuse(self, reason: str, *, sender: str) -> None:
        """Count and log (masked) an inbound text that is kept nowhere: its From is no number
        ("sender") or its MessageSid none of Twilio's ("sid")."""
        self.metrics.replies_skipped.labels(reason).inc()
        log.warning(
            "inbound text refused",
            extra={"reason": reason, "from": mask_phone(sender), "from_length": len(sender)},
        )

    async def close(self) -> None:
        """Finish the writes under way (before the database closes)."""
        await self._callbacks.drain()
        await self._replies.drain()

    async def _write_callbacks(self, batch: Sequence[Callback]) -> list[Outcome | Exception]:
        async def write(items: Sequence[Callback]) -> list[Outcome]:
            # Kept, applied and notified (a clinic hears of undelivered, failed) in storage's
            # one function, as of the write's start.
            return await self.transactions.write(
                lambda s: callback_rows.record(
                    s, items, now=self.clock.now(), settings=self.settings, audience=self.audience
                )
            )

        return await _each_alone_on_failure(write, batch)

    async def _write_replies(self, batch: Sequence[Reply]) -> list[Handled | Exception]:
        def each(s: Session, items: Sequence[Reply]) -> list[Handled]:
            now = self.clock.now()  # after the gate's wait: the replies are as of now
            return [self.handle_reply(s, reply, now) for reply in items]

        async def write(items: Sequence[Reply]) -> list[Handled]:
            return await self.transactions.write(lambda s: each(s, items))

        return await _each_alone_on_failure(write, batch)


async def _each_alone_on_failure(
    write: Callable[[Sequence[Item]], Awaitable[list[Result]]],
    batch: Sequence[Item],
) -> list[Result | Exception]:
    """`write(batch)`; if it fails, each item written alone, a failure its own result."""
    try:
        return list(await write(batch))
    except Exception:
        if len(batch) == 1:
            raise
        log.exception("a return-path batch failed; writing its items one by one")
    results: list[Result | Exception] = []
    for item in batch:
        try:
            results.extend(await write([item]))
        except Exception as exc:
            results.append(exc)
    return results


def _reply_keys(reply: Reply) -> tuple[str, ...]:
    """What a reply touches: its number's rows, and its MessageSid (a retry of it waits for
    the next write, which finds it kept)."""
    return (reply.sender, "sid:" + reply.provider_id) if reply.provider_id else (reply.sender,)


def _raised(result: Result | Exception) -> Result:
    if isinstance(result, Exception):
        raise result
    return result
