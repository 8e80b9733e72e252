"""The outbox keeps what it delivered for `[notifications] keep_delivered` (30 days by
default), then deletes it with its attempts; pending and failed ones are kept, whatever their
age (one is still owed to the clinic, the other waits for an operator's retry)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from sqlmodel import Session, col, select

from service.config import Settings
from service.notifications.retention import Retention
from service.storage import outbox_retention
from service.storage.outbox import Notification, NotificationAttempt, NotificationState
from service.storage.transactions import Transactions
from service.web.keys import TRANSACTIONS
from tests.conftest import MakeClient
from tests.processes import until_async
from tests.support import FakeClock, make_settings

DAY = timedelta(days=1)


def notification(n: str, state: NotificationState, age: timedelta, clock: FakeClock) -> Any:
    at = clock.now() - age
    done = state != NotificationState.PENDING
    return Notification(
        id=n,
        clinic_id="glow",
        type="message.failed",
        body="{}",
        state=state,
        created_at=at,
        due_at=at,
        give_up_at=at + DAY,
        attempts=1,
        finished_at=at if done else None,
    )


def seed(clock: FakeClock, delivered_ages: list[timedelta]) -> Any:
    """Delivered notifications of these ages, and a pending and a failed one 90 days old,
    each with one attempt."""

    def work(s: Session) -> None:
        rows = [
            notification(f"ntf_d{i}", NotificationState.DELIVERED, age, clock)
            for i, age in enumerate(delivered_ages)
        ]
        rows.append(notification("ntf_pending", NotificationState.PENDING, 90 * DAY, clock))
        rows.append(notification("ntf_failed", NotificationState.FAILED, 90 * DAY, clock))
        s.add_all(rows)
        s.flush()
        s.add_all(NotificationAttempt(notification_id=r.id, at=r.created_at) for r in rows)

    return work


def kept(s: Session) -> tuple[list[str], list[str]]:
    """The notifications' ids, and the ids their attempts name."""
    ids = s.exec(select(Notification.id).order_by(col(Notification.id))).all()
    attempts = s.exec(select(NotificationAttempt.notification_id)).all()
    return list(ids), sorted(attempts)


@pytest.fixture
async def transactions(database: str) -> AsyncIterator[Transactions]:
    opened = Transactions.open(database)
    yield opened
    await opened.close()


async def test_delivered_longer_ago_than_keep_delivered_is_deleted_with_its_attempts(
    transactions: Transactions, database: str, clock: FakeClock
) -> None:
    await transactions.write(seed(clock, [31 * DAY, 29 * DAY, 45 * DAY]))
    await Retention(settings=make_settings(database), transactions=transactions, clock=clock).run()
    expected = ["ntf_d1", "ntf_failed", "ntf_pending"]
    assert await transactions.read(kept) == (expected, expected)


async def test_more_than_a_batch_is_deleted_in_one_run(
    transactions: Transactions, database: str, clock: FakeClock
) -> None:
    ages = [31 * DAY + timedelta(seconds=i) for i in range(outbox_retention.BATCH + 20)]
    await transactions.write(seed(clock, ages))
    await Retention(settings=make_settings(database), transactions=transactions, clock=clock).run()
    expected = ["ntf_failed", "ntf_pending"]
    assert await transactions.read(kept) == (expected, expected)


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_the_app_prunes_as_it_starts(
    make_client: MakeClient, database: str, clock: FakeClock
) -> None:
    settings: Settings = make_settings(database, notifications={"keep_delivered": "7d"})
    seeding = Transactions.open(database)
    await seeding.write(seed(clock, [8 * DAY, 6 * DAY]))
    await seeding.close()
    client = await make_client(settings, clock=clock)

    async def pruned() -> bool:
        ids, _ = await client.app[TRANSACTIONS].read(kept)
        return ids == ["ntf_d1", "ntf_failed", "ntf_pending"]

    await until_async(pruned)


@pytest.mark.parametrize("value", ["10m", "0s"])
def test_keep_delivered_under_an_hour_is_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="keep_delivered"):
        make_settings("sqlite:///x.db", notifications={"keep_delivered": value})
