"""The edge from outside a real `python -m service serve` (contract §14, "The edge"): bodies
trickled a byte at a time are cut at `body_timeout` without an ERROR line, a traceback or a 5xx; a
300-event burst from one clinic meets 429s with Retry-After, and every 202 is stored whole while
every 429 left nothing; no more than `max_connections` connections are served at once."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, TCPConnector

from service.web.serving import LINGER_SECONDS
from tests.helpers.events import completed_event, encode, signed
from tests.helpers.ports import free_port
from tests.helpers.prometheus import sample
from tests.helpers.toml import to_toml
from tests.processes import Service
from tests.support import TOKEN, config_data

BODY_TIMEOUT = 1.0
Start = Callable[..., Awaitable[Service]]


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Start]:
    """Start `serve` with `server` settings and clinic glow's `rate_limit`; stopped after."""
    services: list[Service] = []

    async def _start(*, rate_limit: str = "50/s", **server: Any) -> Service:
        port = free_port()
        data = config_data(
            tmp_path / f"{port}.db",
            server={"public_base_url": f"http://127.0.0.1:{port}", **server},
        )
        data["clinics"]["glow"]["rate_limit"] = rate_limit
        config = tmp_path / f"{port}.toml"
        config.write_text(to_toml(data), encoding="utf-8")
        service = Service(config, port, tmp_path / f"{port}.log")
        services.append(service)
        async with ClientSession() as http:
            await service.start(http)
        return service

    yield _start
    for service in services:
        service.stop()


async def trickle(port: int) -> tuple[float, bytes]:
    """POST an event's headers, then its 60 KB body a byte every 0.2 s; the seconds until the
    service closed the connection, and what it answered."""
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /v1/clinics/glow/events HTTP/1.1\r\nHost: aftercare\r\n"
        b"Content-Type: application/json\r\nContent-Length: 60000\r\n\r\n"
    )
    started = loop.time()

    async def drip() -> None:
        while True:
            writer.write(b"{")
            await writer.drain()
            await asyncio.sleep(0.2)

    dripping = asyncio.create_task(drip())
    try:
        answer = await asyncio.wait_for(reader.read(), timeout=30)  # until the service closes
    except ConnectionResetError:
        answer = b""
    finally:
        dripping.cancel()
        writer.close()
    return loop.time() - started, answer


async def scrape(service: Service) -> str:
    """The service's /metrics text."""
    async with ClientSession() as http, http.get(service.base + "/metrics") as response:
        return await response.text()


def http_statuses(metrics: str) -> set[str]:
    """Every status the HTTP request metrics counted."""
    return set(
        re.findall(
            r'^aftercare_http_request_duration_seconds_count\{.*status="(\d+)"', metrics, re.M
        )
    )


async def test_trickled_bodies_are_cut_quietly(start: Start) -> None:
    """Four connections dripping a byte every 0.2 s with body_timeout 1s: each is answered 408
    and closed within the timeout and aiohttp's linger; no ERROR, no traceback, no 5xx."""
    service = await start(body_timeout=f"{BODY_TIMEOUT:g}s")
    cuts = await asyncio.gather(*(trickle(service.port) for _ in range(4)))
    for seconds, answer in cuts:
        assert BODY_TIMEOUT <= seconds < BODY_TIMEOUT + LINGER_SECONDS + 2.0, cuts
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:100]
    samples = await scrape(service)
    assert not {s for s in http_statuses(samples) if s.startswith("5")}
    assert "408" in http_statuses(samples)
    text = service.log.read_text()
    assert "Traceback" not in text
    levels = [json.loads(line)["level"] for line in text.splitlines() if line.startswith("{")]
    assert "error" not in levels and "critical" not in levels


MALFORMED = (
    b"POST /v1/clinics/glow/events HTTP/1.1\r\nHost: a\r\nContent-Length: nope\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost a\r\n\r\n",
)


async def test_malformed_requests_are_refused_without_an_error_line(start: Start) -> None:
    """Requests aiohttp cannot parse are answered 400 and logged as warnings without a
    traceback: anyone can send them, and nothing of ours failed."""
    service = await start()
    for raw in MALFORMED:
        reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
        writer.write(raw)
        answer = await asyncio.wait_for(reader.read(), timeout=10)
        writer.close()
        assert answer.split(b"\r\n")[0].endswith(b" 400 Bad Request"), answer[:100]
    await asyncio.sleep(0.2)  # the log line follows the answer
    lines = [json.loads(line) for line in service.log.read_text().splitlines() if line[:1] == "{"]
    refused = [line for line in lines if line["message"].startswith("malformed request")]
    assert len(refused) == len(MALFORMED) and {line["level"] for line in refused} == {"warning"}
    assert "Traceback" not in service.log.read_text()
    assert not [line for line in lines if line["level"] in ("error", "critical")]


async def test_a_burst_meets_429_and_leaves_nothing_half_stored(start: Start) -> None:
    """300 signed events at once from glow at 20/s (burst 40): some 202, the rest 429 with a
    whole Retry-After; every 202's treatment reads back with its messages, every 429's is
    unknown; no 5xx; the refusals are counted as rejected_429."""
    service = await start(rate_limit="20/s")
    async with ClientSession(connector=TCPConnector(limit=100)) as http:

        async def post() -> tuple[str, int, str | None, Any]:
            body = completed_event()
            raw = encode(body)
            async with http.post(
                service.base + "/v1/clinics/glow/events", data=raw, headers=signed(raw)
            ) as response:
                answer = await response.json(content_type=None)
                retry = response.headers.get("Retry-After")
                return body["data"]["treatment"]["id"], response.status, retry, answer

        results = await asyncio.gather(*(post() for _ in range(300)))
        statuses = [status for _, status, _, _ in results]
        assert set(statuses) == {202, 429}, statuses
        assert 40 <= statuses.count(202) < 200
        for treatment, status, retry, answer in results:
            if status == 429:
                assert retry is not None and int(retry) >= 1
            async with http.get(
                f"{service.base}/v1/clinics/glow/treatments/{treatment}",
                headers={"Authorization": f"Bearer {TOKEN}"},
            ) as read:
                if status == 429:
                    assert read.status == 404
                else:
                    assert read.status == 200
                    stored = (await read.json())["messages"]
                    assert len(stored) == len(answer["messages"]) > 0
    samples = await scrape(service)
    rejected = sample(samples, "aftercare_events_total", type="unknown", outcome="rejected_429")
    assert rejected == statuses.count(429)
    assert not {s for s in http_statuses(samples) if s.startswith("5")}


async def healthz(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    """A connection that was served /healthz, kept open; None if the service closed it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: aftercare\r\n\r\n")
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()
        return None
    assert head.startswith(b"HTTP/1.1 200 ")
    return reader, writer


async def served(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """`healthz`, tried until a slot is free (a closed connection is let go asynchronously)."""
    for _ in range(50):
        if (connection := await healthz(port)) is not None:
            return connection
        await asyncio.sleep(0.1)
    raise AssertionError("no connection was served in 5 s")


async def test_no_more_than_max_connections_are_open(start: Start) -> None:
    """max_connections 3: three held connections are served, a fourth is closed unanswered,
    and once one of the three closes a new one is served; the refusal is counted."""
    service = await start(max_connections=3)
    held = [await served(service.port) for _ in range(3)]
    assert await healthz(service.port) is None
    held[0][1].close()
    held[0] = await served(service.port)
    for _, writer in held:
        writer.close()
    await asyncio.sleep(0.2)
    samples = await scrape(service)
    refused = sample(samples, "aftercare_http_connections_refused_total")
    assert refused is not None and refused >= 1
