"""The conversation against the real `aftercare serve` process: a patient's "3" and the
nurse's ACK posted as Twilio signs them, the alert sent once, even across a SIGKILL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession

from tests.fakes.twilio import AUTH_TOKEN, message_sid, sign_twilio
from tests.fakes.twilio_process import fake_twilio_process
from tests.fixtures.conversations import CARE, NURSE
from tests.helpers.events import completed_event, encode, signed
from tests.helpers.ports import free_port
from tests.helpers.toml import to_toml
from tests.processes import Service, fake_state, process_config, until_async
from tests.support import FROM, PHONE, SECRET, TOKEN


@pytest.fixture
async def setup(tmp_path: Path, database: str) -> AsyncIterator[tuple[Service, str, ClientSession]]:
    async with fake_twilio_process() as twilio_url, ClientSession() as http:
        port = free_port()
        data = process_config(port, twilio_url, database, steps=1)
        data["clinics"]["glow"]["on_call_numbers"] = [NURSE]
        data["protocols"] = {"care": CARE}
        config = tmp_path / "aftercare.toml"
        config.write_text(to_toml(data))
        service = Service(config, port, tmp_path / "service.log")
        yield service, twilio_url, http
        service.stop()


async def text(
    http: ClientSession, service: Service, body: str, sender: str, sid: str | None = None
) -> str:
    params = {"MessageSid": sid or message_sid(), "From": sender, "To": FROM, "Body": body}
    url = service.base + "/v1/twilio/inbound"
    headers = {"X-Twilio-Signature": sign_twilio(AUTH_TOKEN, url, params)}
    async with http.post(url, data=params, headers=headers) as response:
        assert response.status == 200
        return await response.text()


async def bodies_to(http: ClientSession, twilio_url: str, number: str) -> list[str]:
    return [
        m["body"] for m in (await fake_state(http, twilio_url))["messages"] if m["to"] == number
    ]


async def test_a_3_alerts_the_nurse_once_and_ack_closes_it(setup: Any) -> None:
    """A "3" (posted three times at once with one MessageSid, as Twilio retries) is answered
    and texted to the on-call number once (not again after a SIGKILL and a restart, nor when
    the retry comes again after the ACK); ACK from that number acknowledges it."""
    service, twilio_url, http = setup
    await service.start(http)
    completed = datetime.now(UTC) - timedelta(hours=2)
    event = completed_event(
        treatment={"protocol": "care", "completed_at": completed.isoformat()},
        patient={"timezone": "UTC"},
    )
    raw = encode(event)
    async with http.post(
        f"{service.base}/v1/clinics/glow/events", data=raw, headers=signed(raw, secret=SECRET)
    ) as response:
        assert response.status == 202

    async def checked_in() -> bool:  # sent, and recorded so
        statuses = await service.statuses(http, event["data"]["treatment"]["id"])
        return statuses[0] in ("sent", "delivered")

    await until_async(checked_in)
    sid = message_sid()  # Twilio's retries of the "3", in flight together: one escalation
    answers = await asyncio.gather(*(text(http, service, "3", PHONE, sid) for _ in range(3)))
    assert len(set(answers)) == 1 and "alerted Glow" in answers[0]

    async def alerted() -> bool:
        return len(await bodies_to(http, twilio_url, NURSE)) >= 1

    await until_async(alerted)
    [alert] = await bodies_to(http, twilio_url, NURSE)
    assert "Ana" in alert and "0123" in alert and PHONE[:-4] not in alert
    service.kill()
    await service.start(http)
    assert "Acknowledged: Ana" in await text(http, service, "ACK", NURSE)
    assert await text(http, service, "3", PHONE, sid) == answers[0]  # a late retry: nothing
    url = f"{service.base}/v1/clinics/glow/escalations"
    async with http.get(url, headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        [escalation] = (await response.json())["escalations"]
        assert escalation["state"] == "acknowledged"
    assert len(await bodies_to(http, twilio_url, NURSE)) == 1
