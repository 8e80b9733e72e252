"""bench/fake_twilio.py posts Twilio's signed status callbacks (issue 12, the bench side)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, web
from twilio.request_validator import RequestValidator

from tests.fakes.twilio import AUTH_TOKEN
from tests.helpers.ports import free_port
from tests.processes import ROOT, Service, config_text, until_async

FAST = ["--sending-delay", "0", "--sent-delay", "0.05-0.1", "--delivered-delay", "0.1-0.2"]
CREATE = "/2010-04-01/Accounts/AC1/Messages.json"


@asynccontextmanager
async def bench_fake(*args: str) -> AsyncIterator[str]:
    """bench/fake_twilio.py in a subprocess for the block; its base URL."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bench" / "fake_twilio.py"),
        str(port),
        "--auth-token",
        AUTH_TOKEN,
        *args,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with ClientSession() as http:
            await until_async(lambda: _answers(http, url), timeout=15)
        yield url
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()


async def _answers(http: ClientSession, url: str) -> bool:
    with suppress(OSError):
        async with http.get(url + "/_control/count") as response:
            return response.status == 200
    return False


async def callbacks(http: ClientSession, url: str) -> dict[str, Any]:
    """What the fake has posted: counts and every callback."""
    async with http.get(url + "/_control/callbacks") as response:
        state: dict[str, Any] = await response.json()
        return state


async def test_the_service_receives_signed_sending_sent_delivered(tmp_path: Path) -> None:
    async with bench_fake(*FAST) as twilio_url, ClientSession() as http:
        port = free_port()
        config = tmp_path / "aftercare.toml"
        config.write_text(
            config_text(port, twilio_url, f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", steps=1)
        )
        service = Service(config, port, tmp_path / "service.log")
        await service.start(http)
        try:
            treatment = await service.post_plan(http)

            async def delivered() -> bool:
                return await service.statuses(http, treatment) == ["delivered"]

            await until_async(delivered, timeout=30)
            state = await callbacks(http, twilio_url)
        finally:
            service.stop()
    # The service answers 403 to a bad signature: 200 to each means each one was valid.
    assert [(c[0], c[3]) for c in state["callbacks"]] == [
        ("sending", 200),
        ("sent", 200),
        ("delivered", 200),
    ]
    assert state["failed"] == 0 and state["pending_messages"] == 0
    assert all(c[2] >= c[1] for c in state["callbacks"])  # answered after posted


@asynccontextmanager
async def receiver(answer: int = 200) -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """A status-callback endpoint that keeps each form whose signature is valid."""
    kept: list[dict[str, str]] = []

    async def status(request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        signature = request.headers.get("X-Twilio-Signature", "")
        if RequestValidator(AUTH_TOKEN).validate(str(request.url), form, signature):
            kept.append(form)
        return web.Response(status=answer)

    app = web.Application()
    app.router.add_post("/status", status)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/status", kept
    finally:
        await runner.cleanup()


async def create(http: ClientSession, twilio_url: str, callback: str, to: str) -> str:
    """Create a message at the fake; its sid."""
    form = {"To": to, "From": "+15005550006", "Body": "hi", "StatusCallback": callback}
    async with http.post(twilio_url + CREATE, data=form) as response:
        assert response.status == 201
        sid: str = (await response.json())["sid"]
        return sid


async def test_undelivered_share_and_failed_callbacks_are_counted() -> None:
    async with (
        bench_fake(*FAST, "--undelivered", "1") as twilio_url,
        receiver(503) as (hook, kept),
        ClientSession() as http,
    ):
        sid = await create(http, twilio_url, hook, "+14155550100")

        async def done() -> bool:
            pending: int = (await callbacks(http, twilio_url))["pending_messages"]
            return pending == 0

        await until_async(done, timeout=15)
        state = await callbacks(http, twilio_url)
    assert [f["MessageStatus"] for f in kept] == ["sending", "sent", "undelivered"]
    assert {f["MessageSid"] for f in kept} == {sid}
    assert kept[-1]["ErrorCode"] == "30003"
    assert state["posted"] == 3 and state["failed"] == 3  # a 503 is a failed callback


async def test_callbacks_can_be_switched_off_at_run_time() -> None:
    async with bench_fake(*FAST) as twilio_url, receiver() as (hook, kept), ClientSession() as http:
        async with http.post(twilio_url + "/_control/config?callbacks=0") as response:
            assert (await response.json())["callbacks"] is False
        await create(http, twilio_url, hook, "+14155550101")
        async with http.post(twilio_url + "/_control/config?callbacks=1"):
            pass
        await create(http, twilio_url, hook, "+14155550102")

        async def done() -> bool:
            answered: int = (await callbacks(http, twilio_url))["answered"]
            return answered == 3

        await until_async(done, timeout=15)
        async with http.get(twilio_url + "/_control/count") as response:
            count = await response.json()
    assert len(kept) == 3
    assert {f["To"] for f in kept} == {"+14155550102"}  # the first create called nothing back
    assert count["count"] == 2 and count["callbacks"]["pending_messages"] == 0
