"""What a series' event costs through the real app (docs/series.md).

    .venv/bin/python bench/series_events.py sqlite+aiosqlite:////tmp/series.db [N]
    .venv/bin/python bench/series_events.py postgresql+asyncpg://postgres@127.0.0.1/DB [N]

Migrates the database (give it a fresh one), plans N treatments (session 1 of 3, each with a
nudge to book), then posts N `appointment.booked` (7 prep messages each, one nudge
cancelled), N `appointment.cancelled` (7 prep cancelled, a nudge planned again) and N
`patient.updated` (a new first name: every scheduled text rendered again), one at a time
through the app's factory and an in-process client, and prints the mean wall time of each.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository: tests

from aiohttp.test_utils import TestClient, TestServer

from service.config import Settings
from service.storage.database import migrate
from service.web.app import create_app
from tests.helpers.events import completed_event, encode, signed
from tests.helpers.series import appointment_cancelled_event, booked_event
from tests.support import config_data

PREP = [
    {"key": "p-days", "kind": "prep", "days_before": [7, 4, 1], "at": ["10:00", "18:00"],
     "text": "Prep for session {session_number}, {first_name}."},
    {"key": "p-soon", "kind": "prep", "before": "2h", "text": "See you soon, {first_name}."},
]  # fmt: skip


def _renamed(i: int) -> dict[str, Any]:
    return {
        "type": "patient.updated",
        "timestamp": datetime.now(UTC).isoformat(),
        "data": {"patient": {"id": f"p{i}", "first_name": "Bea"}},
    }


async def measure(url: str, n: int) -> None:
    data = config_data(url)
    data["protocols"]["mn"]["steps"] += PREP
    client = TestClient(TestServer(create_app(Settings.model_validate(data))))
    await client.start_server()

    async def post(body: dict[str, Any]) -> None:
        raw = encode(body)
        answer = await client.post("/v1/clinics/glow/events", data=raw, headers=signed(raw))
        assert answer.status == 202, await answer.text()

    try:
        for i in range(n):
            patient = {"id": f"p{i}", "phone": f"+1415555{i:04d}"}
            await post(completed_event(treatment={"id": f"t{i}"}, patient=patient))
        starts = datetime.now(UTC) + timedelta(days=20)
        events: list[tuple[str, Callable[[int], dict[str, Any]]]] = [
            ("appointment.booked", lambda i: booked_event(f"a{i}", starts, patient_id=f"p{i}")),
            ("appointment.cancelled", lambda i: appointment_cancelled_event(f"a{i}")),
            ("patient.updated", _renamed),
        ]
        for name, make in events:
            began = time.perf_counter()
            for i in range(n):
                await post(make(i))
            print(f"{name}: {(time.perf_counter() - began) / n * 1000:.1f} ms an event ({n})")
    finally:
        await client.close()


if __name__ == "__main__":
    target = sys.argv[1]
    migrate(target)
    asyncio.run(measure(target, int(sys.argv[2]) if len(sys.argv) > 2 else 300))
