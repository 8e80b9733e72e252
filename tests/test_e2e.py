"""End to end: the real app (factory, scheduler, dispatcher) and the real twilio client,
sending to a fake Twilio server over HTTP; real time, real SQLite."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import ClientSession
from pytest_aiohttp import AiohttpServer

from service.web.app import create_app
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, serve
from tests.helpers.events import completed_event, encode, signed
from tests.helpers.ports import free_port
from tests.support import FROM, PHONE, TOKEN, glow_in_utc, make_settings

STEPS = [
    {"key": "first", "kind": "aftercare", "after": "1s", "text": "Hi {first_name}, first note."},
    {
        "key": "serum",
        "kind": "serum",
        "after": "2s",
        "every": "1s",
        "count": 3,
        "text": "Apply your {serum}, {first_name}.",
    },
]


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll `condition` until it holds; fail after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def delivered_histories(http: ClientSession, treatment_url: str) -> list[list[str]]:
    """The statuses in each of the treatment's messages' history, once every one of them is
    delivered (read through the API at `treatment_url`; fails after 10 s)."""
    auth = {"Authorization": f"Bearer {TOKEN}"}

    async def statuses() -> set[str]:
        async with http.get(treatment_url, headers=auth) as r:
            return {m["status"] for m in (await r.json())["messages"]}

    deadline = asyncio.get_running_loop().time() + 10
    while await statuses() != {"delivered"}:
        assert asyncio.get_running_loop().time() < deadline, await statuses()
        await asyncio.sleep(0.1)
    async with http.get(treatment_url, headers=auth) as r:
        messages = (await r.json())["messages"]
    return [[h["status"] for h in m["history"]] for m in messages]


@pytest.fixture
async def running(database: str, aiohttp_server: AiohttpServer) -> Any:
    fake = FakeTwilio(callback_delay=0.1)
    twilio_url = await serve(aiohttp_server, fake)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = make_settings(
        database,
        server={"public_base_url": base},
        sms={"backend": "twilio"},
        twilio={
            "account_sid": ACCOUNT_SID,
            "auth_token": AUTH_TOKEN,
            "api_base_url": twilio_url,
            "request_timeout": "2s",
        },
        clinics={"glow": glow_in_utc()},
        protocols={"quick": {"title": "Quick", "steps": STEPS}},
    )
    server = await aiohttp_server(create_app(settings), port=port)
    return fake, server, base


class TestEndToEnd:
    async def test_each_message_arrives_once_on_time_with_the_right_fields(
        self, running: Any
    ) -> None:
        """Every planned message reaches Twilio once, within a second of its send_at."""
        fake, _server, base = running
        body = completed_event(
            treatment={"protocol": "quick", "completed_at": datetime.now(UTC).isoformat()},
            patient={"timezone": "UTC"},
        )
        raw = encode(body)
        async with ClientSession() as http:
            async with http.post(
                f"{base}/v1/clinics/glow/events", data=raw, headers=signed(raw)
            ) as response:
                assert response.status == 202
                plan = await response.json()
            await until(lambda: len(fake.messages) == 4)
            await asyncio.sleep(0.5)  # anything doubled would have arrived by now
            assert len(fake.attempts) == len(fake.messages) == 4
            by_body = sorted(fake.messages, key=lambda m: m.at)
            due = sorted(datetime.fromisoformat(m["send_at"]) for m in plan["messages"])
            for message, send_at in zip(by_body, due, strict=True):
                late = message.at - send_at.timestamp()
                assert -0.05 <= late < 1.0, f"{late:.3f}s late"
                assert message.to == PHONE and message.from_ == FROM
                assert message.callback == f"{base}/v1/twilio/status"
            assert by_body[0].body == "Hi Ana, first note.\nReply STOP to opt out."
            assert [m.body for m in by_body[1:]] == ["Apply your hyaluronic acid serum, Ana."] * 3

            treatment_url = f"{base}/v1/clinics/glow/treatments/{body['data']['treatment']['id']}"
            history = await delivered_histories(http, treatment_url)
        assert all(h == ["scheduled", "sending", "sent", "delivered"] for h in history), history

    async def test_message_due_later_waits_for_its_time(self, running: Any) -> None:
        """Nothing is sent before its send_at."""
        fake, _server, base = running
        completed = datetime.now(UTC) - timedelta(milliseconds=200)
        body = completed_event(
            treatment={"protocol": "quick", "completed_at": completed.isoformat()},
            patient={"timezone": "UTC"},
        )
        raw = encode(body)
        async with (
            ClientSession() as http,
            http.post(f"{base}/v1/clinics/glow/events", data=raw, headers=signed(raw)) as response,
        ):
            assert response.status == 202
        await asyncio.sleep(0.5)
        assert fake.attempts == []
        await until(lambda: len(fake.messages) >= 1)
        assert fake.messages[0].at >= (completed + timedelta(seconds=1)).timestamp() - 0.05


class TestConsoleBackend:
    async def test_console_backend_records_messages_sent_without_a_network(
        self, database: str, aiohttp_client: Any, caplog: pytest.LogCaptureFixture
    ) -> None:
        """With the console backend a due message is logged (masked) and recorded as sent."""
        caplog.set_level("INFO")
        settings = make_settings(
            database,
            clinics={"glow": glow_in_utc()},
            protocols={"quick": {"title": "Quick", "steps": STEPS[:1]}},
        )
        client = await aiohttp_client(create_app(settings))
        body = completed_event(
            treatment={"protocol": "quick", "completed_at": datetime.now(UTC).isoformat()},
            patient={"timezone": "UTC"},
        )
        raw = encode(body)
        assert (
            await client.post("/v1/clinics/glow/events", data=raw, headers=signed(raw))
        ).status == 202
        url = f"/v1/clinics/glow/treatments/{body['data']['treatment']['id']}"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            message = (await (await client.get(url, headers=auth)).json())["messages"][0]
            if message["status"] == "sent":
                break
            assert asyncio.get_running_loop().time() < deadline, message
            await asyncio.sleep(0.1)
        assert message["provider_id"].startswith("console-")
        console = [r.getMessage() for r in caplog.records if r.name == "aftercare.sms.console"]
        assert len(console) == 1 and "Hi Ana, first note." in console[0]
        assert PHONE not in console[0] and "0123" in console[0]
