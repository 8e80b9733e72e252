"""patient.updated with a new time zone (contract §5): the local clock steps and the quiet hours
follow the new zone, sent reminders are not planned again, a time long past in the new zone expires
and one just past goes out at once, and on the treatment day the times only the new zone has are
added and the rest cancelled. Signed events through the real app on a fresh database of each kind;
the clock stands at 2026-11-25 15:00 UTC, the moment the treatment completed (07:00 in Los Angeles),
unless a test moves it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session

from service.config import Settings
from service.storage.models import Message, Status
from service.web.keys import TRANSACTIONS
from tests.conftest import AppClient
from tests.fixtures.corrections import COMPLETED, plan
from tests.helpers.client import move_message, post_event, treatment_messages
from tests.helpers.events import completed_event, patient_updated_event
from tests.support import FakeClock, config_data, make_settings


async def by_step(client: AppClient, step: str, treatment_id: str = "tr_1") -> list[str]:
    """The send_at of a step's messages, in order."""
    return [
        m["send_at"]
        for m in (await treatment_messages(client, treatment_id)).values()
        if m["step"] == step
    ]


class TestTimeZoneChange:
    async def test_local_clock_steps_follow_the_new_zone(self, client: AppClient) -> None:
        """Serum reminders at 08:30 and 20:30 move to those hours in Berlin."""
        await plan(client)
        tonight = await by_step(client, "tonight")
        response = await post_event(client, patient_updated_event(timezone="Europe/Berlin"))
        assert response.status == 202
        assert await by_step(client, "serum") == [
            "2026-11-26T07:30:00Z",
            "2026-11-26T19:30:00Z",
            "2026-11-27T07:30:00Z",
            "2026-11-27T19:30:00Z",
        ]
        assert await by_step(client, "tonight") == tonight
        serum = [m for m in (await treatment_messages(client)).values() if m["step"] == "serum"]
        assert serum[0]["history"][-1]["detail"] == "patient.updated: re-planned in Europe/Berlin"

    async def test_quiet_hours_of_the_new_zone_apply_to_every_step(self, client: AppClient) -> None:
        """A message that would now fall at night in Tokyo moves to 08:00 there."""
        await plan(client)
        await post_event(client, patient_updated_event(timezone="Asia/Tokyo"))
        assert await by_step(client, "tonight") == ["2026-11-25T23:00:00Z"]  # 08:00 JST
        assert (await by_step(client, "serum"))[0] == "2026-11-26T23:30:00Z"  # 08:30 JST

    async def test_sent_reminders_are_not_planned_again(self, client: AppClient) -> None:
        """A reminder already sent stays as sent; only the ones still to come move."""
        ids = await plan(client)
        first_serum = ids[1]
        await move_message(client, first_serum, Status.SENDING, Status.SENT)
        await post_event(client, patient_updated_event(timezone="Europe/Berlin"))
        assert await by_step(client, "serum") == [
            "2026-11-26T16:30:00Z",
            "2026-11-26T19:30:00Z",
            "2026-11-27T07:30:00Z",
            "2026-11-27T19:30:00Z",
        ]
        assert len(await treatment_messages(client)) == len(ids)

    async def test_a_time_long_past_in_the_new_zone_expires(
        self, make_client: Any, settings: Any
    ) -> None:
        """A reminder whose new time is past its expiry is never sent late."""
        client = await make_client(settings, clock=FakeClock(COMPLETED + timedelta(hours=24)))
        ids = await plan(client)  # 07:00 in Los Angeles, a day after the treatment
        await post_event(client, patient_updated_event(timezone="Europe/Berlin"))
        found = await treatment_messages(client)
        first_serum = found[ids[1]]
        assert (first_serum["status"], first_serum["send_at"]) == (
            "expired",
            "2026-11-26T07:30:00Z",
        )
        assert first_serum["reason"] == "its time had passed in the patient's new time zone"

    async def test_a_time_just_past_in_the_new_zone_goes_out_at_once(
        self, make_client: Any, database: str
    ) -> None:
        """A reminder held by quiet hours in the old zone but due already in the new one
        (and not yet expired) is armed and sent at once, on the real clock."""
        now = datetime.now(UTC)
        clinics = config_data(database)["clinics"]
        clinics["glow"]["quiet_hours"] = {
            "start": f"{now - timedelta(hours=3):%H:%M}",
            "end": f"{now + timedelta(hours=2):%H:%M}",
        }
        step = {
            "key": "soon",
            "kind": "aftercare",
            "after": "1h",
            "expires_after": "6h",
            "text": "Hi {first_name}.",
        }
        client = await make_client(
            make_settings(
                database, clinics=clinics, protocols={"mn": {"title": "Soon", "steps": [step]}}
            )
        )
        completed = (now - timedelta(hours=2)).isoformat()
        body = completed_event(
            treatment={"id": "tr_1", "completed_at": completed}, patient={"timezone": "UTC"}
        )
        [held] = (await (await post_event(client, body)).json())["messages"]
        assert held["status"] == "scheduled" and held["send_at"] > f"{now:%Y-%m-%dT%H:%M}"
        # Twelve hours east the same instant is mid-afternoon, far from quiet hours.
        await post_event(client, patient_updated_event(timezone="Etc/GMT-12"))
        assert await eventually_status(client, held["id"]) == "sent"


class TestTimeZoneChangeOfTheTreatmentDay:
    @pytest.fixture
    def settings(self, database: str) -> Settings:
        """One reminder at 20:30 local on the treatment day and the day after."""
        step = {
            "key": "evening",
            "kind": "serum",
            "days": "0-1",
            "at": ["20:30"],
            "text": "Serum time, {first_name}.",
        }
        return make_settings(database, protocols={"mn": {"title": "Evening", "steps": [step]}})

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock(datetime(2026, 11, 25, 20, 1, tzinfo=UTC))

    async def test_times_only_the_new_zone_has_are_added_and_the_rest_cancelled(
        self, client: AppClient
    ) -> None:
        """Treated at 21:00 in Berlin: one reminder; in Los Angeles (12:00) there are two,
        and back in Berlin the second is cancelled."""
        body = completed_event(
            treatment={"id": "tr_1", "completed_at": "2026-11-25T20:00:00Z"},
            patient={"timezone": "Europe/Berlin"},
        )
        assert len((await (await post_event(client, body)).json())["messages"]) == 1
        answer = await (
            await post_event(client, patient_updated_event(timezone="America/Los_Angeles"))
        ).json()
        assert len(answer["messages"]) == 2
        assert await by_step(client, "evening") == ["2026-11-26T04:30:00Z", "2026-11-27T04:30:00Z"]
        await post_event(client, patient_updated_event(timezone="Europe/Berlin"))
        found = sorted(
            (m["send_at"], m["status"]) for m in (await treatment_messages(client)).values()
        )
        assert found == [
            ("2026-11-26T19:30:00Z", "scheduled"),
            ("2026-11-27T04:30:00Z", "cancelled"),
        ]


async def eventually_status(
    client: AppClient, message_id: str, *, until: str = "sent", timeout: float = 10.0
) -> str:
    """The message's status once it reaches `until` (or whatever it is after `timeout`)."""
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:

        def _tx6(s: Session) -> Any:
            status = s.get(Message, message_id).status  # type: ignore[union-attr]
            return status

        status = await client.app[TRANSACTIONS].read(_tx6)
        if status == until or loop.time() > deadline:
            return str(status)
        await asyncio.sleep(0.05)
