"""Replies a second through `POST /v1/twilio/inbound`, signed, on SQLite, in one process.

`python bench/reply_rate.py [ROOT]` imports `service` from ROOT (default: this tree), serves
the app on loopback and posts 3,000 free-text replies ("thanks, all good": no keyword, no
check-in in its window) from 300 numbers, 100 at a time, after 200 to warm up; it prints the
rate. Run it for two trees in turn, a few times over: the machine's speed drifts.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent)
sys.path.insert(0, str(ROOT))

from aiohttp.test_utils import TestClient, TestServer  # noqa: E402

from service.storage.database import migrate  # noqa: E402
from service.web.app import create_app  # noqa: E402
from tests.fakes.twilio import AUTH_TOKEN, sign_twilio  # noqa: E402
from tests.support import FROM, make_settings  # noqa: E402

COUNT, NUMBERS, AT_ONCE, WARMUP = 3000, 300, 100, 200
INBOUND = "/v1/twilio/inbound"


async def run(url: str) -> float:
    """Replies a second, once warmed up."""
    settings = make_settings(url, twilio={"auth_token": AUTH_TOKEN})
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    room = asyncio.Semaphore(AT_ONCE)

    async def one(i: int) -> None:
        params = {"From": f"+1415555{i % NUMBERS:04d}", "To": FROM, "Body": "thanks, all good"}
        signature = sign_twilio(AUTH_TOKEN, settings.server.public_base_url + INBOUND, params)
        async with room:
            answer = await client.post(
                INBOUND, data=params, headers={"X-Twilio-Signature": signature}
            )
            assert answer.status == 200, await answer.text()

    await asyncio.gather(*(one(i) for i in range(WARMUP)))
    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(COUNT)))
    rate = COUNT / (time.perf_counter() - started)
    await client.close()
    return rate


def main() -> None:
    url = f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp()) / 'replies.db'}"
    migrate(url)  # outside the loop
    print(f"{ROOT}: {asyncio.run(run(url)):.0f} replies/s")


if __name__ == "__main__":
    main()
