"""CPU of one Twilio status callback through the service's HTTP stack, in one process.

`python bench/callback_cost.py [--concurrency 8]` sends 2,000 seeded messages through the
dispatcher (a sender that accepts at once), then starts the app (`create_app`, served by
aiohttp on a loopback port, middlewares and access log as in `serve`) and posts two signed
status callbacks for each (`sent`, then `delivered`) over `--concurrency` keep-alive
connections, each callback after the previous one on its connection was answered. It prints
the process's CPU per callback. The client is a bare asyncio stream writing pre-signed
requests, so that most of what is measured is the service's: its share is the same for every
tree. To compare trees, run each tree's own copy in turn, a few times over.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from pydantic import SecretStr

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import dispatch_cost  # noqa: E402
import seed  # noqa: E402

from service.config import Settings  # noqa: E402
from service.delivery.dispatch import Dispatcher  # noqa: E402
from service.observability.logs import configure_logging  # noqa: E402
from service.storage.database import migrate  # noqa: E402
from service.storage.transactions import Transactions  # noqa: E402
from service.web.app import create_app  # noqa: E402
from tests.fakes.twilio_wire import ACCOUNT_SID, callback_form, sign_twilio  # noqa: E402

COUNT, WARMUP = 2000, 100
TOKEN = "bench-auth-token"
PATH = "/v1/twilio/status"


def settings(url: str, base: str) -> Settings:
    """dispatch_cost's settings with Twilio's auth token and this server's public URL."""
    given = dispatch_cost.settings(url)
    server = given.server.model_copy(update={"public_base_url": base})
    twilio = given.twilio.model_copy(update={"auth_token": SecretStr(TOKEN)})
    return given.model_copy(update={"server": server, "twilio": twilio})


def _access_log_class() -> type | None:
    """The service's access logger (None in a tree without one)."""
    try:
        from service.web.access_log import AccessLog
    except ImportError:
        return None
    return AccessLog


async def _send_all(url: str, count: int) -> list[str]:
    """Seed `count` due messages and send them: their provider ids."""
    await asyncio.to_thread(migrate, url)
    start = time.time() - 5
    seed.seed_sqlite(
        url.split("///", 1)[1],
        seed.Batch(
            label="cb",
            send_at=[start + i * 1e-4 for i in range(count)],
            phone=lambda i: f"+1415555{i:04d}",
            body=lambda i: f"[cb#{i}] serum time",
            per_treatment=1,
        ),
    )
    transactions = Transactions.open(url)
    sender = dispatch_cost.Accepting()
    dispatcher = Dispatcher(
        settings=dispatch_cost.settings(url),
        transactions=transactions,
        sender=sender,
        clock=dispatch_cost.Now(),
        instance="cb",
    )
    while claimed := await dispatcher.claim(limit=64):
        await asyncio.gather(*(dispatcher._send(m) for m in claimed))
    await transactions.close()
    return [f"SM{n:032d}" for n in range(1, sender.sent + 1)]


def _request(base: str, sid: str, status: str) -> bytes:
    """A signed status callback, as bytes on the wire."""
    form = callback_form(
        sid=sid, account_sid=ACCOUNT_SID, to="+14155550000", from_=None, status=status
    )
    body = urlencode(form).encode()
    signature = sign_twilio(TOKEN, base + PATH, form)
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"X-Twilio-Signature: {signature}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _post_all(port: int, requests: list[bytes]) -> None:
    """Post `requests` in order on one keep-alive connection, each after the last answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for request in requests:
        writer.write(request)
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
            elif line.startswith(b"HTTP/1.1 ") and not line.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"callback answered {line!r}")
        await reader.readexactly(length)
    writer.close()


async def main(concurrency: int) -> None:
    configure_logging(logging.INFO)
    with tempfile.TemporaryDirectory() as work:
        url = f"sqlite+aiosqlite:///{work}/cost.db"
        sids = await _send_all(url, COUNT // 2 + WARMUP)
        runner = _runner(url)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        base = "http://127.0.0.1"
        warm, measured = sids[:WARMUP], sids[WARMUP:]
        await _post_all(port, [_request(base, s, st) for s in warm for st in ("sent",)])
        lanes = [measured[i::concurrency] for i in range(concurrency)]
        wires = [
            [_request(base, s, st) for s in lane for st in ("sent", "delivered")] for lane in lanes
        ]
        posted = sum(len(w) for w in wires)
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(_post_all(port, w) for w in wires))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        await runner.cleanup()
        delivered = seed.sqlite_scalar(
            f"{work}/cost.db", "SELECT count(*) FROM message WHERE status = 'delivered'"
        )
    if delivered != len(measured):
        raise RuntimeError(f"{delivered} messages delivered, not {len(measured)}")
    print(
        f"{ROOT}: {cpu / posted * 1e6:.0f} µs CPU, {wall / posted * 1e6:.0f} µs wall per callback"
        f" ({posted} callbacks, {concurrency} connections)"
    )


def _runner(url: str) -> web.AppRunner:
    """The app as `serve` runs it: its access logger when the tree has one."""
    app = create_app(settings(url, "http://127.0.0.1"), sender=dispatch_cost.Accepting())
    access: dict[str, Any] = {
        "access_log": logging.getLogger("aftercare.access"),
        "access_log_format": "%r %s %b %Tfs",
    }
    if (access_log_class := _access_log_class()) is not None:
        access["access_log_class"] = access_log_class
    return web.AppRunner(app, **access)


if __name__ == "__main__":
    n = int(sys.argv[sys.argv.index("--concurrency") + 1]) if "--concurrency" in sys.argv else 8
    asyncio.run(main(n))
