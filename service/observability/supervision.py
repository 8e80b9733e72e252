"""Background work that never dies quietly (contract §14, "Nothing dies quietly").

Every task the service starts in the background (a send, a notification's attempt, a group
commit's writer, a timer's wake-up, a periodic sweep, the notifications' loop, the WAL
checkpointer) goes through a `Supervisor`: a failure is logged once, at ERROR, and counted in
`aftercare_background_failures_total{task=...}`; nothing is left for asyncio's "Task exception
was never retrieved". A loop that fails is started again after a backoff (`Backoff`: 1 s,
doubling up to a minute, back to 1 s after a run that went well for longer than that).

The log line names the task, the exception's type and where it was raised (file, line and
function of the innermost frames), never the exception's message nor the values in the frames:
a message may quote a statement's parameters or a patient's words (design invariant 8).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import traceback
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from service.observability.metrics import Metrics

log = logging.getLogger("aftercare.background")
T = TypeVar("T")
FIRST_DELAY = 1.0  # seconds before a failed loop starts again
MAX_DELAY = 60.0
FRAMES = 4  # innermost frames named in the log line


class Backoff:
    """Delays after consecutive failures: `first`, doubling up to `cap`; reset by a success."""

    def __init__(self, *, first: float = FIRST_DELAY, cap: float = MAX_DELAY) -> None:
        self.first, self.cap = first, cap
        self.failures = 0

    def failed(self) -> float:
        """Note a failure; the seconds to wait before trying again."""
        self.failures += 1
        return float(min(self.cap, self.first * 2 ** min(self.failures - 1, 30)))

    def succeeded(self) -> None:
        """Note a success: the next failure waits `first` again."""
        self.failures = 0


class Supervisor:
    """Starts background tasks whose failures are logged (masked) and counted."""

    def __init__(self, metrics: Metrics) -> None:
        self.failures = metrics.background_failures

    def report(self, task: str, exc: BaseException) -> None:
        """Log and count one failure of the background task `task`."""
        self.failures.labels(task).inc()
        log.error(
            "background task failed",
            extra={"task": task, "error": type(exc).__name__, "where": where(exc)},
        )

    def spawn(self, work: Coroutine[Any, Any, T], *, task: str) -> asyncio.Task[T]:
        """Run `work` as a task named `task`; its failure reported when it ends (its result
        is still the task's, for whoever awaits it)."""
        started = asyncio.create_task(work, name=f"aftercare:{task}")
        started.add_done_callback(partial(self._ended, task))
        return started

    def _ended(self, task: str, ended: asyncio.Task[Any]) -> None:
        if ended.cancelled():
            return
        exc = ended.exception()  # retrieved: asyncio has nothing left to complain of
        if exc is not None:
            self.report(task, exc)

    async def forever(
        self, run: Callable[[], Awaitable[None]], *, task: str, stop: asyncio.Event
    ) -> None:
        """Run the loop `run` until it returns or `stop` is set; when it raises, report it
        and start it again after a backoff (cut short by `stop`)."""
        backoff, clock = Backoff(), asyncio.get_running_loop().time
        while not stop.is_set():
            started = clock()
            try:
                await run()
                return
            except Exception as exc:
                self.report(task, exc)
            if clock() - started > backoff.cap:  # it ran well for a while: a new failure
                backoff.succeeded()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=backoff.failed())


def where(exc: BaseException) -> str:
    """The innermost frames of `exc`'s traceback as `file:line function`, innermost first;
    no message, no values."""
    frames = traceback.extract_tb(exc.__traceback__)[-FRAMES:]
    return " < ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(frames))
