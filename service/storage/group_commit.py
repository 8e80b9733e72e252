"""Group commit: whatever is submitted while a write is under way is written by the next one.

A burst of work then costs a few transactions, not one per item, and each caller still returns
only once its own item is durable. The writes run in a task of their own, so a caller that
gives up waiting does not cut off the items that joined its batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Hashable, Iterable, Sequence
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")
Write = Callable[[Sequence[Item]], Awaitable[Sequence[Result]]]
# How the writer task is started: a supervisor's `spawn` (its failure logged and counted), or
# plain asyncio.create_task.
Spawn = Callable[[Coroutine[Any, Any, None]], "asyncio.Task[None]"]


class GroupCommit(Generic[Item, Result]):
    """Batches items for `write`, which answers one result per item, in order.

    `keys` names what an item touches; two items that share a key never go in one batch (the
    later one waits for the next write), so a write may treat its items as independent."""

    def __init__(
        self,
        write: Write[Item, Result],
        *,
        batch: int,
        keys: Callable[[Item], Iterable[Hashable]],
        spawn: Spawn = asyncio.create_task,
    ) -> None:
        self._write = write
        self._spawn = spawn
        self._batch = batch
        self._keys = keys
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        """Write `item` with whatever else is pending; its result, once durable."""
        done: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append((item, done))
        if self._writer is None:
            self._writer = self._spawn(self._write_pending())
        return await asyncio.shield(done)

    @property
    def waiting(self) -> int:
        """How many submitted items are not yet being written (for /metrics)."""
        return len(self._pending)

    async def drain(self) -> None:
        """Wait until everything submitted so far is written (before the database closes)."""
        while self._writer is not None:
            await asyncio.wait({self._writer})

    async def _write_pending(self) -> None:
        try:
            while self._pending:
                await self._write_batch(self._take())
        finally:
            self._writer = None
            for _, done in self._pending:  # left over only when the loop is torn down
                if not done.done():
                    done.set_exception(RuntimeError("group commit stopped"))
            self._pending = []

    def _take(self) -> list[tuple[Item, asyncio.Future[Result]]]:
        """Up to `batch` pending items that share no key, oldest first."""
        batch: list[tuple[Item, asyncio.Future[Result]]] = []
        rest: list[tuple[Item, asyncio.Future[Result]]] = []
        seen: set[Hashable] = set()
        for entry in self._pending:
            keys = set(self._keys(entry[0]))
            if len(batch) < self._batch and seen.isdisjoint(keys):
                seen |= keys
                batch.append(entry)
            else:
                rest.append(entry)
        self._pending = rest
        return batch

    async def _write_batch(self, batch: Sequence[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            results = await self._write([item for item, _ in batch])
        except asyncio.CancelledError:
            for _, done in batch:
                done.cancel()
            raise
        except Exception as exc:
            for _, done in batch:
                if not done.done():
                    done.set_exception(exc)
            return
        for (_, done), result in zip(batch, results, strict=True):
            if not done.done():
                done.set_result(result)
