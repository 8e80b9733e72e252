"""A lean Twilio-compatible Messages endpoint for benchmarks:
`python bench/fake_twilio.py PORT [--no-callbacks] [--create-latency 0.1-0.3] ...` (--help).

The tests' fake (tests/fakes/twilio.py) checks auth, keeps every attempt, builds a full
Twilio resource per answer and runs on aiohttp's web framework: right for tests, but its
per-create cost would share the two cores with the service it measures. This one is a bare
asyncio protocol on HTTP/1.1 keep-alive: it parses the request line, Content-Length and the
form body, records (arrival time with time.time(), To, Body) and answers 201 with a small
Twilio-shaped JSON document (tests/fakes/twilio_wire.py: the tests' fake's shape too) after
`--create-latency` (answers on one connection keep their order). No auth check. Unless
`--no-callbacks`, every create with a StatusCallback is followed by Twilio's signed status
callbacks (`sending`, `sent`, `delivered` or a share `undelivered`; bench/fake_callbacks.py),
each recorded with when it was posted and answered.

Endpoints:
  POST .../Messages.json          create: record and answer 201 at once
  GET  .../Messages.json?To=...   list: this recipient's recorded messages, newest first
  GET  /_control/count            {"count": n, "callbacks": {posted, answered, failed, ...}}
  GET  /_control/messages         {"messages": [{"to", "body", "at"}, ...]} in arrival order
  GET  /_control/callbacks        the counts and every callback [status, posted, answered,
                                  http status] (answered null and status -1 when it failed)
  POST /_control/config?callbacks=0&create_latency=0.1-0.3&sent_delay=..&undelivered=0.1
  POST /_control/reset            forget everything, callbacks still armed included
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository: tests.fakes

from fake_callbacks import Callbacks, Settings, add_traffic_options, parse_range

from tests.fakes.twilio_wire import (
    ACCOUNT_SID,
    error_body,
    message_page,
    message_resource,
    rfc2822,
)

# (arrival time.time(), to, body, sid, from)
Record = tuple[float, str, str, str, str]


class State:
    def __init__(self) -> None:
        self.records: list[Record] = []
        self.counter = 0
        self._stamp_second = -1
        self._stamp = ""

    def stamp(self, now: float) -> str:
        second = int(now)
        if second != self._stamp_second:
            self._stamp_second, self._stamp = second, rfc2822(now)
        return self._stamp


STATE = State()
CALLBACKS = Callbacks(Settings())


def _resource(rec: Record, stamp: str) -> dict[str, object]:
    _at, to, body, sid, from_ = rec
    return message_resource(
        sid=sid, account_sid=ACCOUNT_SID, to=to, from_=from_ or None, body=body, date_created=stamp
    )


def _response(status: int, payload: object) -> bytes:
    body = json.dumps(payload, separators=(",", ":")).encode()
    reason = {200: "OK", 201: "Created", 404: "Not Found"}.get(status, "OK")
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


class Http(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buf = bytearray()
        self.free_at = 0.0  # loop time the last answer goes out: answers keep their order

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = bytes(self.buf[:end]).split(b"\r\n")
            length, close = 0, False
            for line in lines[1:]:
                key, _, value = line.partition(b":")
                key = key.strip().lower()
                if key == b"content-length":
                    length = int(value)
                elif key == b"connection" and value.strip().lower() == b"close":
                    close = True
            total = end + 4 + length
            if len(self.buf) < total:
                return
            body = bytes(self.buf[end + 4 : total])
            del self.buf[:total]
            method, target, _ = lines[0].decode("latin-1").split(" ", 2)
            self.answer(
                handle(method, target, body),
                close,
                method == "POST" and target.endswith("/Messages.json"),
            )
            if close:
                return

    def answer(self, response: bytes, close: bool, create: bool) -> None:
        """Write at once, or after the create latency, never ahead of an earlier answer."""
        loop = asyncio.get_running_loop()
        low, high = CALLBACKS.settings.create_latency
        delay = random.uniform(low, high) if create and high > 0 else 0.0
        at = max(self.free_at, loop.time() + delay)
        if at <= loop.time():
            self._write(response, close)
        else:
            loop.call_at(at, self._write, response, close)
        self.free_at = at

    def _write(self, response: bytes, close: bool) -> None:
        if self.transport.is_closing():
            return
        self.transport.write(response)
        if close:
            self.transport.close()


def handle(method: str, target: str, body: bytes) -> bytes:
    now = time.time()
    url = urlsplit(target)
    path = url.path
    if path.endswith("/Messages.json") and method == "POST":
        form = parse_qs(body.decode(), keep_blank_values=True)
        STATE.counter += 1
        rec = (
            now,
            form.get("To", [""])[0],
            form.get("Body", [""])[0],
            f"SM{STATE.counter:032x}",
            form.get("From", [""])[0],
        )
        STATE.records.append(rec)
        CALLBACKS.created(
            url=form.get("StatusCallback", [""])[0],
            sid=rec[3],
            to=rec[1],
            from_=rec[4],
            account_sid=ACCOUNT_SID,
        )
        return _response(201, _resource(rec, STATE.stamp(now)))
    if path.endswith("/Messages.json") and method == "GET":
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        found = [
            r
            for r in reversed(STATE.records)
            if r[1] == query.get("To", r[1]) and r[4] == query.get("From", r[4])
        ]
        size = int(query.get("PageSize", "50"))
        page = [_resource(r, STATE.stamp(r[0])) for r in found[:size]]
        return _response(200, message_page(page, uri=target, page_size=size))
    return control(method, url.path, url.query)


def control(method: str, path: str, query: str) -> bytes:
    """The control endpoints: what the fake saw, its settings, a reset."""
    if path == "/_control/count":
        return _response(200, {"count": len(STATE.records), "callbacks": CALLBACKS.counts()})
    if path == "/_control/callbacks":
        return _response(200, CALLBACKS.detail())
    if path == "/_control/config" and method == "POST":
        CALLBACKS.settings.update({k: v[0] for k, v in parse_qs(query).items()})
        return _response(200, CALLBACKS.settings.describe())
    if path == "/_control/messages":
        return _response(
            200, {"messages": [{"at": r[0], "to": r[1], "body": r[2]} for r in STATE.records]}
        )
    if path == "/_control/reset" and method == "POST":
        STATE.records.clear()
        CALLBACKS.reset()
        return _response(200, {"ok": True})
    return _response(404, error_body(404, 20404, "The requested resource was not found"))


def parse_args(argv: list[str]) -> tuple[int, Settings]:
    """The port and the fake's settings from the command line."""
    p = argparse.ArgumentParser(prog="bench/fake_twilio.py", description=__doc__.split("\n")[0])
    p.add_argument("port", type=int)
    p.add_argument(
        "--no-callbacks",
        dest="callbacks",
        action="store_false",
        help="post no status callbacks (the fake of before issue 12)",
    )
    p.add_argument("--auth-token", default="bench-auth-token", help="signs the callbacks")
    add_traffic_options(p, create_latency="0")
    p.add_argument(
        "--sending-delay",
        default="0-0.05",
        metavar="S[-S]",
        help="create answered -> 'sending' posted (0-0.05)",
    )
    p.add_argument(
        "--callback-concurrency",
        type=int,
        default=32,
        help="callbacks in flight at most (and keep-alive connections)",
    )
    a = p.parse_args(argv)
    return a.port, Settings(
        enabled=a.callbacks,
        auth_token=a.auth_token,
        create_latency=parse_range(a.create_latency),
        sending_delay=parse_range(a.sending_delay),
        sent_delay=parse_range(a.sent_delay),
        delivered_delay=parse_range(a.delivered_delay),
        undelivered=a.undelivered,
        concurrency=a.callback_concurrency,
    )


async def main(port: int, settings: Settings) -> None:
    CALLBACKS.settings = settings
    CALLBACKS.start()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Http, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(*parse_args(sys.argv[1:])))
