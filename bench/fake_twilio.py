"""A lean Twilio-compatible Messages endpoint for benchmarks: `python bench/fake_twilio.py PORT`.

The tests' fake (tests/fakes/twilio.py) checks auth, keeps every attempt, builds a full
Twilio resource per answer and runs on aiohttp's web framework: right for tests, but its
per-create cost would share the two cores with the service it measures. This one is a bare
asyncio protocol on HTTP/1.1 keep-alive: it parses the request line, Content-Length and the
form body, records (arrival time with time.time(), To, Body) and answers 201 at once with a
small Twilio-shaped JSON document. No auth check, no status callbacks.

Endpoints:
  POST .../Messages.json          create: record and answer 201 at once
  GET  .../Messages.json?To=...   list: this recipient's recorded messages, newest first
  GET  /_control/count            {"count": n}
  GET  /_control/messages         {"messages": [{"to", "body", "at"}, ...]} in arrival order
  POST /_control/reset            forget everything
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from email.utils import formatdate
from urllib.parse import parse_qs, urlsplit

ACCOUNT_SID = "AC" + "0" * 32

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
            self._stamp_second, self._stamp = second, formatdate(now, usegmt=True)
        return self._stamp


STATE = State()


def _resource(rec: Record, stamp: str) -> dict[str, object]:
    _at, to, body, sid, from_ = rec
    return {"sid": sid, "account_sid": ACCOUNT_SID, "to": to, "from": from_, "body": body,
            "status": "queued", "num_segments": "1", "num_media": "0",
            "direction": "outbound-api", "api_version": "2010-04-01",
            "date_created": stamp, "date_updated": stamp, "date_sent": None,
            "error_code": None, "error_message": None, "price": None,
            "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json"}


def _response(status: int, payload: object) -> bytes:
    body = json.dumps(payload, separators=(",", ":")).encode()
    reason = {200: "OK", 201: "Created", 404: "Not Found"}.get(status, "OK")
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    return head + body


class Http(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buf = bytearray()

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
            body = bytes(self.buf[end + 4:total])
            del self.buf[:total]
            method, target, _ = lines[0].decode("latin-1").split(" ", 2)
            self.transport.write(handle(method, target, body))
            if close:
                self.transport.close()
                return


def handle(method: str, target: str, body: bytes) -> bytes:
    now = time.time()
    url = urlsplit(target)
    path = url.path
    if path.endswith("/Messages.json") and method == "POST":
        form = parse_qs(body.decode(), keep_blank_values=True)
        STATE.counter += 1
        rec = (now, form.get("To", [""])[0], form.get("Body", [""])[0],
               f"SM{STATE.counter:032x}", form.get("From", [""])[0])
        STATE.records.append(rec)
        return _response(201, _resource(rec, STATE.stamp(now)))
    if path.endswith("/Messages.json") and method == "GET":
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        found = [r for r in reversed(STATE.records)
                 if r[1] == query.get("To", r[1]) and r[4] == query.get("From", r[4])]
        size = int(query.get("PageSize", "50"))
        page = [_resource(r, STATE.stamp(r[0])) for r in found[:size]]
        return _response(200, {"messages": page, "end": max(0, len(page) - 1),
                               "first_page_uri": target, "next_page_uri": None, "page": 0,
                               "page_size": size, "previous_page_uri": None, "start": 0,
                               "uri": target})
    if path == "/_control/count":
        return _response(200, {"count": len(STATE.records)})
    if path == "/_control/messages":
        return _response(200, {"messages": [{"at": r[0], "to": r[1], "body": r[2]}
                                            for r in STATE.records]})
    if path == "/_control/reset" and method == "POST":
        STATE.records.clear()
        return _response(200, {"ok": True})
    return _response(404, {"code": 20404, "message": "not found", "status": 404})


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Http, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(int(sys.argv[1])))
