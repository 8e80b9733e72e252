"""Store functions run whole in one transaction: committed on return, rolled back on raise."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlmodel import Session, select

from service.storage.models import OptOut
from service.storage.transactions import Transactions

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
