"""Store functions run whole in one transaction: committed on return, rolled back on raise."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from service.storage.models import OptOut
from service.storage.transactions import Transactions
from tests.processes import until_async

AT = datetime(2026, 11, 25, 15, tzinfo=UTC)


def _opt_out(phone: str) -> OptOut:
    return OptOut(clinic_id="glow", phone=phone, at=AT, source="test")


def _phones(s: Session) -> list[str]:
    return sorted(s.exec(select(OptOut.phone)).all())


@pytest.fixture
async def transactions(database: str) -> AsyncIterator[Transactions]:
    opened = Transactions.open(database)
    yield opened
    await opened.close()


async def test_a_write_commits_what_it_did_and_returns_its_result(
    transactions: Transactions,
) -> None:
    def add(s: Session) -> str:
        s.add(_opt_out("+14155550123"))
        return "added"

    assert await transactions.write(add, urgent=True) == "added"
    assert await transactions.read(_phones) == ["+14155550123"]


async def test_a_write_that_raises_leaves_nothing_behind(transactions: Transactions) -> None:
    def add_then_fail(s: Session) -> None:
        s.add(_opt_out("+14155550124"))
        s.flush()
        raise LookupError("changed its mind")

    with pytest.raises(LookupError):
        await transactions.write(add_then_fail)
    assert await transactions.read(_phones) == []
    assert transactions.gate.waiting == 0


async def test_a_caller_that_gives_up_does_not_cut_its_transaction_off(
    transactions: Transactions,
) -> None:
    """A timeout around a write raises at the caller, but the transaction runs to its end and
    commits: on PostgreSQL a statement cancelled half way breaks asyncpg's connection (and
    can leave its task pending for good); on SQLite the writer's thread cannot be stopped."""
    broken: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, c: broken.append(c))

    def slow_add(s: Session) -> None:
        if transactions.dialect == "postgresql":
            s.connection().execute(sa.text("SELECT pg_sleep(0.3)"))
        else:
            time.sleep(0.3)
        s.add(_opt_out("+14155550125"))

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await transactions.write(slow_add)

    async def committed() -> bool:
        return await transactions.read(_phones) == ["+14155550125"]

    await until_async(committed, timeout=5)
    gc.collect()  # a broken connection's future is reported when it is collected
    assert broken == []
