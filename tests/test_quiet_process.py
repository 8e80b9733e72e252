"""Contract §15 from outside the process: an evening note whose time falls in quiet hours, with
`in_quiet_hours = "earlier"`, reaches Twilio 15 minutes before they start, not the next morning.

The contract's case (§15) is a treatment completed at 19:30 in Los Angeles: "tonight" (2 h after,
21:30) lands at 20:45. A real `aftercare serve` runs on the real clock, so the test puts the same
shape where the clock is: quiet hours start 15 minutes after the next whole minute T (the config's
clock times are minutes), the treatment was completed 1 h 15 min before T in a zone seven hours
behind UTC, and "tonight" must arrive at T (its 2 h would be 45 minutes into quiet hours). It waits
for T: up to about a minute."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import ClientSession

from tests.fakes.twilio_process import fake_twilio_process
from tests.helpers.events import completed_event, encode, signed
from tests.helpers.ports import free_port
from tests.helpers.toml import to_toml
from tests.processes import Service, fake_state, process_config, until_async

ZONE = ZoneInfo("Etc/GMT+7")  # UTC-7, as Los Angeles in summer
TONIGHT = {
    "key": "tonight",
    "kind": "aftercare",
    "after": "2h",
    "expires_after": "3h",
    "in_quiet_hours": "earlier",
    "text": "Tonight: rinse with lukewarm water only, {first_name}.",
}


def _next_minute(after: datetime) -> datetime:
    return after.replace(second=0, microsecond=0) + timedelta(minutes=1)


async def _post_evening(http: ClientSession, base: str, completed: datetime) -> dict[str, Any]:
    """POST the treatment "tr_evening" of protocol "evening", completed at `completed`, of a
    patient in ZONE, to the service at `base`; its one planned message."""
    event = completed_event(
        treatment={
            "id": "tr_evening",
            "protocol": "evening",
            "completed_at": completed.isoformat(),
        },
        patient={"timezone": "Etc/GMT+7"},
    )
    raw = encode(event)
    url = f"{base}/v1/clinics/glow/events"
    async with http.post(url, data=raw, headers=signed(raw)) as response:
        assert response.status == 202, await response.text()
        planned: dict[str, Any]
        [planned] = (await response.json())["messages"]
    return planned


async def test_tonight_arrives_fifteen_minutes_before_quiet_hours(
    tmp_path: Path, db_path: Path
) -> None:
    target = _next_minute(datetime.now(UTC) + timedelta(seconds=6))  # the service starts in ~1 s
    start = (target + timedelta(minutes=15)).astimezone(ZONE)
    end = start + timedelta(hours=11)
    async with fake_twilio_process() as twilio_url, ClientSession() as http:
        port = free_port()
        data = process_config(port, twilio_url, f"sqlite+aiosqlite:///{db_path}", steps=1)
        data["clinics"]["glow"]["quiet_hours"] = {
            "start": start.strftime("%H:%M"),
            "end": end.strftime("%H:%M"),
        }
        data["protocols"] = {"evening": {"title": "Evening", "steps": [TONIGHT]}}
        config = tmp_path / "aftercare.toml"
        config.write_text(to_toml(data))
        service = Service(config, port, tmp_path / "service.log")
        await service.start(http)
        try:
            completed = target - timedelta(hours=1, minutes=15)
            planned = await _post_evening(http, service.base, completed)
            assert datetime.fromisoformat(planned["send_at"]) == target

            async def arrived() -> bool:
                return bool((await fake_state(http, twilio_url))["messages"])

            await until_async(arrived, timeout=90)
            [sms] = (await fake_state(http, twilio_url))["messages"]
        finally:
            service.stop()
    assert sms["body"].startswith("Tonight:")
    late = sms["at"] - target.timestamp()
    assert -0.05 <= late < 1.0, f"{late:.3f} s from 15 minutes before quiet hours"
    local = datetime.fromtimestamp(sms["at"], ZONE)
    assert (local + timedelta(minutes=15)).strftime("%H:%M") == start.strftime("%H:%M")
