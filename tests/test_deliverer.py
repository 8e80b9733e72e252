"""Contract §11: notifications delivered at least once, signed, by the app's deliverer.

The real app (`create_app`), real databases, and a fake clinic endpoint that verifies every
signature with standardwebhooks; the clock is a fake the test moves over the backoff.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pytest_aiohttp import AiohttpServer
from sqlmodel import Session

from service.storage.outbox import record
from service.web.keys import SETTINGS, TRANSACTIONS
from tests.conftest import AppClient
from tests.fakes.clinic import FakeClinic, serve_clinic
from tests.helpers.client import bearer
from tests.helpers.ports import free_port
from tests.processes import until_async
from tests.support import OTHER_TOKEN, SECRET, TOKEN, FakeClock, config_data, glow_in_utc
from tests.support import make_settings as settings_for

BASE = "/v1/clinics/glow/notifications"


@dataclass
class Hooked:
    client: AppClient
    clinic: FakeClinic
    clock: FakeClock

    async def notify(self, n: int = 1) -> list[str]:
        """`n` message.failed notifications written now, committed; their ids."""
        settings = self.client.app[SETTINGS]
        now = self.clock.now()

        def work(s: Session) -> list[str]:
            ids = [
                record(
                    s.connection(),
                    settings,
                    clinic_id="glow",
                    type_="message.failed",
                    data={"message": {"id": f"msg_{i}", "status": "failed"}},
                    now=now,
                )
                for i in range(n)
            ]
            return [i for i in ids if i is not None]

        return await self.client.app[TRANSACTIONS].write(work)

    async def listed(self, **query: str) -> dict[str, Any]:
        answer = await self.client.get(BASE, params=query, headers=bearer(TOKEN))
        assert answer.status == 200, await answer.text()
        page: dict[str, Any] = await answer.json()
        return page

    async def one(self, nid: str) -> dict[str, Any]:
        found: dict[str, Any]
        [found] = [n for n in (await self.listed(limit="200"))["notifications"] if n["id"] == nid]
        return found

    async def attempts(self, nid: str, count: int) -> dict[str, Any]:
        """The notification once it has `count` attempts recorded."""

        async def made() -> bool:
            return len((await self.one(nid))["attempts"]) >= count

        await until_async(made, timeout=10)
        return await self.one(nid)

    async def to_next_attempt(self, nid: str) -> None:
        """Move the clock to the notification's next attempt."""
        due = (await self.one(nid))["due_at"]
        self.clock.current = datetime.fromisoformat(due.replace("Z", "+00:00"))


async def start(make_client: Any, database: str, url: str, clinic: FakeClinic) -> Hooked:
    """The app, its clinic `glow` notified at `url`, on a fake clock."""
    settings = settings_for(
        database,
        clinics={
            "glow": glow_in_utc(notifications={"url": url, "secrets": [SECRET]}),
            "other": config_data(database)["clinics"]["other"],
        },
        notifications={
            "timeout": "1s",
            "retry_initial_delay": "2s",
            "retry_max_delay": "8s",
            "give_up_after": "1m",
        },
    )
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    return Hooked(await make_client(settings, clock=clock), clinic, clock)


@pytest.fixture
async def hooked(
    database: str, aiohttp_server: AiohttpServer, make_client: Any
) -> AsyncIterator[Hooked]:
    clinic = FakeClinic(secret=SECRET)
    yield await start(make_client, database, await serve_clinic(aiohttp_server, clinic), clinic)
    clinic.release.set()


class TestDelivery:
    async def test_refused_twice_then_accepted_the_same_webhook_id_arrives_three_times(
        self, hooked: Hooked
    ) -> None:
        """500, 500, 200: one webhook-id three times, each signed; delivered after three
        attempts, each with its status, the retries after a backoff of the injected clock."""
        hooked.clinic.answers.extend([500, 500])
        [nid] = await hooked.notify()
        first = await hooked.attempts(nid, 1)
        assert first["state"] == "pending" and first["attempts"][0]["http_status"] == 500
        due = datetime.fromisoformat(first["due_at"].replace("Z", "+00:00"))
        assert timedelta(seconds=1) <= due - hooked.clock.now() <= timedelta(seconds=2)
        await hooked.to_next_attempt(nid)
        await hooked.attempts(nid, 2)
        await hooked.to_next_attempt(nid)
        done = await hooked.attempts(nid, 3)
        assert hooked.clinic.ids() == [nid] * 3
        assert all(r.verified for r in hooked.clinic.received)
        assert hooked.clinic.received[-1].body == {
            "type": "message.failed",
            "timestamp": hooked.clinic.received[-1].body["timestamp"],  # type: ignore[index]
            "data": {"message": {"id": "msg_0", "status": "failed"}},
        }
        assert (done["state"], done["outcome"], done["due_at"]) == ("delivered", "delivered", None)
        assert [a["http_status"] for a in done["attempts"]] == [500, 500, 200]

    async def test_a_notification_leaves_within_a_second_of_its_commit(
        self, hooked: Hooked
    ) -> None:
        """No wake-up from the writer: the deliverer's poll finds it in time."""
        started = time.monotonic()
        [nid] = await hooked.notify()

        async def arrived() -> bool:
            return hooked.clinic.ids() == [nid]

        await until_async(arrived, timeout=5)
        assert time.monotonic() - started < 1.0

    async def test_a_redirect_is_not_followed_and_counts_as_a_failed_attempt(
        self, hooked: Hooked
    ) -> None:
        hooked.clinic.answers.append("redirect")
        [nid] = await hooked.notify()
        found = await hooked.attempts(nid, 1)
        assert found["state"] == "pending" and hooked.clinic.redirected == 0
        assert found["attempts"][0]["http_status"] == 307
        assert "redirect" in found["last_error"]

    async def test_a_timeout_counts_as_a_failed_attempt(self, hooked: Hooked) -> None:
        """An endpoint slower than [notifications].timeout: the attempt failed, retried."""
        hooked.clinic.answers.append("slow:3")
        [nid] = await hooked.notify()
        found = await hooked.attempts(nid, 1)
        assert found["attempts"][0] == {
            "at": found["attempts"][0]["at"],
            "http_status": None,
            "error": "timeout after 1s",
        }
        assert found["state"] == "pending"

    async def test_given_up_after_give_up_after_then_retried_by_the_api(
        self, hooked: Hooked
    ) -> None:
        """Refused until give_up_after has passed: failed (gave_up), counted for the alert;
        POST …/retry makes it pending again and the next attempt delivers it; a retry of a
        delivered one is a 409."""
        hooked.clinic.answers.extend([500] * 50)
        [nid] = await hooked.notify()
        await hooked.attempts(nid, 1)
        hooked.clock.advance(timedelta(minutes=2))
        failed = await hooked.attempts(nid, 2)
        assert (failed["state"], failed["outcome"]) == ("failed", "gave_up")
        metrics = await (await hooked.client.get("/metrics")).text()
        assert 'aftercare_notifications_total{outcome="gave_up",type="message.failed"} 1.0' in (
            metrics
        )
        assert (await hooked.listed(state="failed"))["notifications"][0]["id"] == nid
        hooked.clinic.answers.clear()
        answer = await hooked.client.post(f"{BASE}/{nid}/retry", headers=bearer(TOKEN))
        assert answer.status == 200 and (await answer.json())["state"] == "pending"
        delivered = await hooked.attempts(nid, 3)
        assert delivered["state"] == "delivered"
        again = await hooked.client.post(f"{BASE}/{nid}/retry", headers=bearer(TOKEN))
        assert again.status == 409
        assert again.content_type == "application/problem+json"

    async def test_a_change_that_rolls_back_sends_nothing(self, hooked: Hooked) -> None:
        """A notification recorded in a transaction that fails never leaves; the one
        committed after it does."""
        settings = hooked.client.app[SETTINGS]

        def change_then_fail(s: Session) -> None:
            record(
                s.connection(),
                settings,
                clinic_id="glow",
                type_="message.failed",
                data={},
                now=hooked.clock.now(),
            )
            raise RuntimeError("the change failed")

        with pytest.raises(RuntimeError):
            await hooked.client.app[TRANSACTIONS].write(change_then_fail)
        [nid] = await hooked.notify()
        await hooked.attempts(nid, 1)
        assert hooked.clinic.ids() == [nid]
        assert [n["id"] for n in (await hooked.listed())["notifications"]] == [nid]


async def test_a_refused_connection_counts_as_a_failed_attempt(
    database: str, make_client: Any
) -> None:
    """Nothing listens at the endpoint: the attempt failed, it is retried later."""
    closed = await start(
        make_client, database, f"http://127.0.0.1:{free_port()}/h", FakeClinic(SECRET)
    )
    [nid] = await closed.notify()
    found = await closed.attempts(nid, 1)
    assert found["state"] == "pending"
    assert found["attempts"][0]["error"].startswith("connection failed")


class TestApi:
    async def test_lists_newest_first_in_pages_with_a_cursor(self, hooked: Hooked) -> None:
        hooked.clinic.answers.extend([500] * 10)
        ids = []
        for _ in range(3):
            ids += await hooked.notify()
            hooked.clock.advance(timedelta(milliseconds=10))
        first = await hooked.listed(limit="2")
        second = await hooked.listed(limit="2", cursor=first["next_cursor"])
        listed = [n["id"] for n in first["notifications"] + second["notifications"]]
        assert listed == ids[::-1] and second["next_cursor"] is None
        assert (await hooked.listed(state="delivered"))["notifications"] == []

    @pytest.mark.parametrize(
        ("query", "field"), [({"state": "lost"}, "state"), ({"limit": "201"}, "limit")]
    )
    async def test_a_wrong_parameter_is_a_422_naming_it(
        self, hooked: Hooked, query: dict[str, str], field: str
    ) -> None:
        answer = await hooked.client.get(BASE, params=query, headers=bearer(TOKEN))
        assert answer.status == 422
        assert [e["field"] for e in (await answer.json())["errors"]] == [field]

    async def test_tokens_and_unknown_ids(self, hooked: Hooked) -> None:
        """No token 401, another clinic's 403; an unknown notification 404."""
        assert (await hooked.client.get(BASE)).status == 401
        assert (await hooked.client.get(BASE, headers=bearer(OTHER_TOKEN))).status == 403
        unknown = await hooked.client.post(f"{BASE}/ntf_nope/retry", headers=bearer(TOKEN))
        assert unknown.status == 404

    async def test_metrics_show_the_pending_count_and_the_oldest_age(self, hooked: Hooked) -> None:
        hooked.clinic.answers.extend([500] * 10)
        [nid] = await hooked.notify()
        await hooked.attempts(nid, 1)
        hooked.clock.advance(timedelta(seconds=1))
        metrics = await (await hooked.client.get("/metrics")).text()
        assert "aftercare_notifications_pending 1.0" in metrics
        assert "aftercare_oldest_pending_notification_seconds 1.0" in metrics
        assert 'aftercare_notifications_total{outcome="retried",type="message.failed"} 1.0' in (
            metrics
        )
