"""The tests' fake Twilio (tests/fakes/twilio.py) in a process of its own.

`python -m tests.fakes.twilio_process PORT SID TOKEN [--no-callbacks] [--media]`, or in a
test `async with fake_twilio_process(...) as base_url:`.

`--media` also listens on 127.0.0.2 (same port): the media's CDN, as tests/fakes/twilio_media.py
serves it beside the in-process fake (allow it with `twilio.media_hosts = ["127.0.0.2"]`);
`POST /_control/media` adds a resource and answers its MediaUrl.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

from aiohttp import web

from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from tests.helpers.ports import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@asynccontextmanager
async def fake_twilio_process(
    *,
    port: int | None = None,
    account_sid: str = ACCOUNT_SID,
    auth_token: str = AUTH_TOKEN,
    callbacks: bool = True,
    media: bool = False,
) -> AsyncIterator[str]:
    """Run the fake as a separate process for the block; yields its base URL."""
    port = port or free_port()
    args = [str(port), account_sid, auth_token] + ([] if callbacks else ["--no-callbacks"])
    args += ["--media"] if media else []
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.fakes.twilio_process", *args, cwd=PROJECT_ROOT
    )
    try:
        await _wait_listening(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()


async def _wait_listening(port: int, process: asyncio.subprocess.Process) -> None:
    """Return once `port` accepts connections; fail if the process exits or 10 s pass."""
    async with asyncio.timeout(10):
        while process.returncode is None:
            with suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                await writer.wait_closed()
                return
            await asyncio.sleep(0.05)
    raise RuntimeError(f"fake twilio exited with {process.returncode}")


def main(argv: list[str] | None = None) -> None:
    """`python -m tests.fakes.twilio_process PORT SID TOKEN [--no-callbacks]`."""
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.twilio_process")
    parser.add_argument("port", type=int, nargs="?", default=18100)
    parser.add_argument("account_sid", nargs="?", default=ACCOUNT_SID)
    parser.add_argument("auth_token", nargs="?", default=AUTH_TOKEN)
    parser.add_argument("--no-callbacks", dest="callbacks", action="store_false")
    parser.add_argument(
        "--callback-delay",
        type=float,
        default=0.02,
        help="seconds between a message's status changes",
    )
    parser.add_argument("--media", action="store_true", help="serve the media CDN on 127.0.0.2")
    options = parser.parse_args(argv)
    fake = FakeTwilio(
        options.account_sid,
        options.auth_token,
        callbacks=options.callbacks,
        callback_delay=options.callback_delay,
    )
    app, hosts = fake.app(), ["127.0.0.1"]
    if options.media:
        fake.media.api_base = f"http://127.0.0.1:{options.port}"
        fake.media.cdn_base = f"http://127.0.0.2:{options.port}"
        app.router.add_get("/cdn/{token}", fake.media.cdn)
        hosts.append("127.0.0.2")
    web.run_app(app, host=hosts, port=options.port, print=None, shutdown_timeout=1)


if __name__ == "__main__":
    main()
