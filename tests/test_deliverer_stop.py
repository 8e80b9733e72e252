"""Stopping the deliverer cuts no transaction off.

Its loop reads the outbox every poll; cancelled in the middle of that read, asyncpg's
connection breaks ("unexpected connection_lost() call", a future nobody retrieves) and, per
MagicStack/asyncpg#873, a cancelled task can even stay pending for good, which is how a test's
teardown could hang a whole CI run. `stop` lets the transaction under way end first.
"""

from __future__ import annotations

import asyncio
import gc
import random
from typing import Any

import pytest

from service.notifications.deliverer import Deliverer
from service.observability.metrics import Metrics
from service.storage.transactions import Transactions
from tests.support import FakeClock, make_settings


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
async def test_stopping_in_the_middle_of_a_poll_breaks_no_connection(database: str) -> None:
    """Forty starts and stops at random points of a 1 ms poll (always inside a read): no
    stop outlasts its timeout, and no connection is broken by a cancellation."""
    settings = make_settings(database)
    broken: list[Any] = []
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: broken.append(context))
    try:
        for _ in range(40):
            transactions = Transactions.open(database)
            deliverer = Deliverer(
                settings=settings,
                transactions=transactions,
                clock=FakeClock(),
                instance="test",
                metrics=Metrics(),
                poll=0.001,
            )
            deliverer.start()
            await asyncio.sleep(random.random() * 0.02)
            await asyncio.wait_for(deliverer.stop(timeout=2), timeout=5)
            await transactions.close()
        gc.collect()  # a broken connection's future is reported when it is collected
    finally:
        loop.set_exception_handler(previous)
    assert [c.get("exception") or c.get("message") for c in broken] == []
