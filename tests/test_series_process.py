"""A series from outside the process (contract §13): a real `aftercare serve` and a fake Twilio in
processes of their own, driven by signed events and read through the API; real time.

Protocol `series`: a note a second after each session, the nudge to book the next session
four weeks on while sessions remain, and two prep notes 3 s and 2 s before an appointment
(clinic `glow` in UTC without quiet hours).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession

from tests.fakes.twilio_process import fake_twilio_process
from tests.helpers.events import completed_event, encode, signed
from tests.helpers.ports import free_port
from tests.helpers.series import (
    appointment_cancelled_event,
    booked_event,
    treatment_updated_event,
)
from tests.helpers.toml import to_toml
from tests.processes import Service, fake_state, process_config, until_async
from tests.support import TOKEN

STEPS = [
    {"key": "after", "kind": "aftercare", "after": "1s", "text": "Session {session_number} done."},
    {
        "key": "next",
        "kind": "rebook",
        "after": "4w",
        "only_if": "more_sessions_planned",
        "text": "Book session {next_session_number} of {sessions_planned}.",
    },
    {"key": "prep-3", "kind": "prep", "before": "3s", "text": "Prep A for {session_number}."},
    {"key": "prep-2", "kind": "prep", "before": "2s", "text": "Prep B for {session_number}."},
]
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def service(tmp_path: Path, database: str) -> AsyncIterator[tuple[Service, str, Any]]:
    async with fake_twilio_process() as twilio_url, ClientSession() as http:
        port = free_port()
        data = process_config(port, twilio_url, database, steps=1)
        data["protocols"] = {"series": {"title": "Series", "steps": STEPS}}
        config = tmp_path / "aftercare.toml"
        config.write_text(to_toml(data))
        running = Service(config, port, tmp_path / "service.log")
        await running.start(http)
        yield running, twilio_url, http
        running.stop()


async def post(service: Service, http: ClientSession, body: dict[str, Any]) -> Any:
    raw = encode(body)
    url = f"{service.base}/v1/clinics/glow/events"
    async with http.post(url, data=raw, headers=signed(raw)) as response:
        assert response.status in (200, 202), await response.text()
        return await response.json()


async def get(service: Service, http: ClientSession, path: str) -> Any:
    async with http.get(f"{service.base}/v1/clinics/glow/{path}", headers=AUTH) as response:
        assert response.status == 200, await response.text()
        return await response.json()


def session(number: int, *, completed_at: datetime, treatment_id: str) -> dict[str, Any]:
    return completed_event(
        treatment={
            "id": treatment_id,
            "protocol": "series",
            "completed_at": completed_at.isoformat(),
            "session_number": number,
            "sessions_planned": 3,
        },
        patient={"timezone": "UTC"},
    )


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class TestSeriesFromOutside:
    async def test_prep_arrives_at_twilio_within_a_second_of_its_time(self, service: Any) -> None:
        """Session 1 completed, session 2 booked 6 s ahead: both prep notes reach Twilio once,
        each within a second of its send_at, and the appointment shows them sent."""
        running, twilio_url, http = service
        await post(running, http, session(1, completed_at=datetime.now(UTC), treatment_id="t1"))
        starts = datetime.now(UTC) + timedelta(seconds=6)
        booked = await post(running, http, booked_event("a2", starts))
        due = {m["step"]: at(m["send_at"]) for m in booked["messages"] if m["kind"] == "prep"}
        assert due == {
            "prep-3": starts - timedelta(seconds=3),
            "prep-2": starts - timedelta(seconds=2),
        }

        async def prep_sent() -> list[Any]:
            state = await fake_state(http, twilio_url)
            return [m for m in state["messages"] if m["body"].startswith("Prep")]

        await until_async(lambda: _at_least(prep_sent, 2), timeout=15)
        arrived = {m["body"].split(" for")[0]: m["at"] for m in await prep_sent()}
        assert len(await prep_sent()) == 2
        for step, body in (("prep-3", "Prep A"), ("prep-2", "Prep B")):
            late = arrived[body] - due[step].timestamp()
            assert -0.05 <= late < 1.0, f"{step}: {late:.3f}s late"

        async def all_sent() -> bool:
            shown = await get(running, http, "appointments/a2")
            return {m["status"] for m in shown["messages"]} <= {"sent", "delivered"}

        await until_async(all_sent)

    async def test_the_nudge_is_cancelled_by_booking_and_planned_again_by_cancelling(
        self, service: Any
    ) -> None:
        running, _twilio, http = service
        await post(running, http, session(1, completed_at=datetime.now(UTC), treatment_id="t1"))
        starts = datetime.now(UTC) + timedelta(days=14)
        booked = await post(running, http, booked_event("a2", starts))
        [nudge] = [m for m in booked["messages"] if m["kind"] == "rebook"]
        assert (nudge["kind"], nudge["status"]) == ("rebook", "cancelled")
        assert nudge["reason"] == "next session booked"
        cancelled_at = datetime.now(UTC)
        await post(running, http, appointment_cancelled_event("a2"))
        shown = await get(running, http, "appointments/a2")
        assert shown["appointment"]["state"] == "cancelled"
        assert {m["status"] for m in shown["messages"] if m["kind"] == "prep"} == {"cancelled"}
        [again] = [m for m in shown["messages"] if m["kind"] == "rebook"]
        assert (again["kind"], again["status"]) == ("rebook", "scheduled")
        planned = at(again["send_at"]) - timedelta(weeks=4)
        assert abs(planned - cancelled_at) < timedelta(seconds=5)
        treatment = await get(running, http, "treatments/t1")
        rebooks = [(m["status"], m["reason"]) for m in treatment["messages"] if m["step"] == "next"]
        assert sorted(rebooks, key=str) == [
            ("cancelled", "next session booked"),
            ("scheduled", None),
        ]

    async def test_a_corrected_completed_at_moves_every_scheduled_message(
        self, service: Any
    ) -> None:
        """Typed an hour early: every scheduled message moves an hour; the note already sent
        stays as it went out."""
        running, twilio_url, http = service
        typed = datetime.now(UTC) - timedelta(hours=1)
        await post(running, http, session(1, completed_at=typed, treatment_id="t1"))

        async def note_sent() -> bool:
            return len((await fake_state(http, twilio_url))["messages"]) >= 1

        await until_async(note_sent)
        before = {m["id"]: m for m in (await get(running, http, "treatments/t1"))["messages"]}
        fixed = treatment_updated_event("t1", completed_at=typed + timedelta(hours=1))
        await post(running, http, fixed)
        after = {m["id"]: m for m in (await get(running, http, "treatments/t1"))["messages"]}
        moved = {
            before[i]["step"]: at(after[i]["send_at"]) - at(before[i]["send_at"]) for i in before
        }
        assert moved == {"after": timedelta(0), "next": timedelta(hours=1)}


async def _at_least(found: Any, count: int) -> bool:
    return len(await found()) >= count
