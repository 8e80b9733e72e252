"""Prep before a session (contract §13): planned by appointment.booked, moved by
appointment.rescheduled, cancelled by appointment.cancelled, followed on patient.updated.

Signed events through the real app, on SQLite then PostgreSQL. The clock stands at
2026-11-25 15:00 UTC (07:00 in Los Angeles), when session 1 of 3 of `tr_1` completed.
Protocol `mn` gains two prep steps: `prep-week` 7 local days before at 10:00, and
`prep-today` 2 h before.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from service.config import Settings
from tests.conftest import AppClient
from tests.helpers.events import patient_updated_event
from tests.helpers.series import (
    appointment_cancelled_event,
    booked_event,
    rescheduled_event,
    treatment_updated_event,
)
from tests.support import config_data
from tests.test_amend import bodies
from tests.test_appointments import appointment, at, complete, send

STARTS = datetime(2026, 12, 16, 18, 0, tzinfo=UTC)  # 10:00 in Los Angeles
PREP = [
    {
        "key": "prep-week",
        "kind": "prep",
        "days_before": [7],
        "at": ["10:00"],
        "text": "{first_name}, session {session_number} of {sessions_planned} is a week away.",
    },
    {
        "key": "prep-today",
        "kind": "prep",
        "before": "2h",
        "text": "Clean skin today, {first_name}; bring your {serum}.",
    },
]


@pytest.fixture
def settings(database: str) -> Settings:
    data = config_data(database)
    data["protocols"]["mn"]["steps"].extend(PREP)
    return Settings.model_validate(data)


def prep_of(shown: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["step"]: m for m in shown["messages"] if m["kind"] == "prep"}


class TestBookedPlansPrep:
    async def test_prep_is_planned_before_the_session_in_the_patients_zone(
        self, client: AppClient
    ) -> None:
        await complete(client)
        answer = await send(client, booked_event("ap_2", STARTS))
        planned = {m["step"]: m for m in answer["messages"] if m["kind"] == "prep"}
        assert planned["prep-week"]["send_at"] == "2026-12-09T18:00:00Z"  # 10:00 local
        assert planned["prep-today"]["send_at"] == "2026-12-16T16:00:00Z"  # 08:00 local
        assert {m["status"] for m in planned.values()} == {"scheduled"}
        texts = await bodies(client)
        assert texts[planned["prep-week"]["id"]] == "Ana, session 2 of 3 is a week away."
        assert texts[planned["prep-today"]["id"]] == (
            "Clean skin today, Ana; bring your hyaluronic acid serum."
        )
        assert set(prep_of(await appointment(client))) == {"prep-week", "prep-today"}

    async def test_a_prep_time_already_past_is_recorded_never_sent(self, client: AppClient) -> None:
        """Booked three days ahead: the week-before note's time has gone by."""
        await complete(client)
        answer = await send(client, booked_event("ap_2", datetime(2026, 11, 28, 18, tzinfo=UTC)))
        planned = {m["step"]: m for m in answer["messages"] if m["kind"] == "prep"}
        assert planned["prep-week"]["status"] == "expired"
        assert planned["prep-today"]["status"] == "scheduled"

    async def test_no_consent_records_prep_suppressed(self, client: AppClient) -> None:
        await complete(client)
        await send(client, patient_updated_event(sms_consent=False))
        answer = await send(client, booked_event("ap_2", STARTS))
        assert {m["status"] for m in answer["messages"]} == {"suppressed"}


class TestRescheduledMovesPrep:
    async def test_each_prep_message_follows_the_new_time(self, client: AppClient) -> None:
        """Moved a day and an hour later: each scheduled prep message keeps its id and moves
        with its occurrence."""
        await complete(client)
        booked = prep_of(await send(client, booked_event("ap_2", STARTS)))
        moved = STARTS + timedelta(days=1, hours=1)
        answer = await send(client, rescheduled_event("ap_2", moved))
        after = {m["step"]: m for m in answer["messages"]}
        assert {s: m["id"] for s, m in after.items()} == {s: m["id"] for s, m in booked.items()}
        assert after["prep-week"]["send_at"] == "2026-12-10T18:00:00Z"  # still 10:00 local
        assert at(after["prep-today"]["send_at"]) == moved - timedelta(hours=2)
        shown = prep_of(await appointment(client))
        assert shown["prep-today"]["history"][-1]["detail"] == (
            "appointment.rescheduled: appointment moved to 2026-12-17T19:00:00+00:00"
        )

    async def test_a_move_too_close_expires_the_earlier_note(self, client: AppClient) -> None:
        """Moved to three days ahead, the week-before note's time is past: it expires."""
        await complete(client)
        await send(client, booked_event("ap_2", STARTS))
        soon = datetime(2026, 11, 28, 18, tzinfo=UTC)
        answer = await send(client, rescheduled_event("ap_2", soon))
        after = {m["step"]: m for m in answer["messages"]}
        assert after["prep-week"]["status"] == "expired"
        assert after["prep-today"]["status"] == "scheduled"


class TestCancelledEndsPrep:
    async def test_scheduled_prep_is_cancelled(self, client: AppClient) -> None:
        await complete(client)
        await send(client, booked_event("ap_2", STARTS))
        answer = await send(client, appointment_cancelled_event("ap_2"))
        prep = [m for m in answer["messages"] if m["kind"] == "prep"]
        assert [(m["status"], m["reason"]) for m in prep] == [
            ("cancelled", "appointment cancelled")
        ] * 2


class TestCorrectionsReachPrep:
    async def test_a_new_zone_replans_prep_from_the_appointment(self, client: AppClient) -> None:
        """In New York the week-before note is 10:00 there; `prep-today` stays 2 h before."""
        await complete(client)
        await send(client, booked_event("ap_2", STARTS))
        await send(client, patient_updated_event(timezone="America/New_York"))
        shown = prep_of(await appointment(client))
        assert shown["prep-week"]["send_at"] == "2026-12-09T15:00:00Z"
        assert shown["prep-today"]["send_at"] == "2026-12-16T16:00:00Z"
        assert {m["status"] for m in shown.values()} == {"scheduled"}

    async def test_a_new_serum_is_rendered_into_prep(self, client: AppClient) -> None:
        await complete(client)
        await send(client, booked_event("ap_2", STARTS))
        await send(client, treatment_updated_event("tr_1", serum="copper peptide serum"))
        today = prep_of(await appointment(client))["prep-today"]
        assert (await bodies(client))[today["id"]] == (
            "Clean skin today, Ana; bring your copper peptide serum."
        )


class TestRescheduledAddsWhatTheNewTimeHas:
    @pytest.fixture
    def settings(self, database: str) -> Settings:
        data = config_data(database)
        morning = {
            "key": "prep-morning",
            "kind": "prep",
            "days_before": [0],
            "at": ["09:00"],
            "text": "See you later today, {first_name}.",
        }
        data["protocols"]["mn"]["steps"].append(morning)
        return Settings.model_validate(data)

    async def test_a_same_day_note_the_earlier_time_left_out_is_added(
        self, client: AppClient
    ) -> None:
        """Booked for 08:30 local, a 09:00 note that day is not before it; moved to 10:00,
        it is, and it is planned."""
        await complete(client)
        early = datetime(2026, 12, 16, 16, 30, tzinfo=UTC)  # 08:30 in Los Angeles
        booked = await send(client, booked_event("ap_2", early))
        assert [m for m in booked["messages"] if m["kind"] == "prep"] == []
        moved = await send(client, rescheduled_event("ap_2", STARTS))
        [added] = moved["messages"]
        assert (added["step"], added["status"]) == ("prep-morning", "scheduled")
        assert added["send_at"] == "2026-12-16T17:00:00Z"
        assert [m["id"] for m in (await appointment(client))["messages"]] == [added["id"]]
