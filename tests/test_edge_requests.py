"""The edge over HTTP against the real app (contract §14, "The edge"): an unknown clinic and a bad
signature answer alike, the content type is checked only once the signature holds, a clinic
over its rate_limit meets 429 with Retry-After and nothing stored, and no `Server` header names
versions. The token bucket itself is stepped with an injected clock."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from service.config import Rate, Settings
from service.web.app import create_app
from service.web.rate_limit import RateLimits, TokenBucket
from tests.conftest import AppClient
from tests.helpers.client import bearer, post_event
from tests.helpers.events import completed_event, encode, signed
from tests.support import OTHER_SECRET, TOKEN, config_data


@pytest.fixture
async def client(aiohttp_client: Any, db_path: Path) -> AppClient:
    """The app with clinic glow at 1 event an hour: a burst of 2, then 429."""
    data = config_data(db_path)
    data["clinics"]["glow"]["rate_limit"] = "1/h"
    settings = Settings.model_validate(data)
    result: AppClient = await aiohttp_client(create_app(settings))
    return result


async def _answer(response: Any) -> tuple[int, str, bytes]:
    return response.status, response.headers["Content-Type"], await response.read()


class TestOneAnswerForUnknownClinicAndBadSignature:
    async def test_signed_with_the_wrong_secret_or_to_no_such_clinic(
        self, client: AppClient
    ) -> None:
        """Status, content type and body are byte for byte the same."""
        raw = encode(completed_event())
        forged = await client.post(
            "/v1/clinics/glow/events", data=raw, headers=signed(raw, secret=OTHER_SECRET)
        )
        unknown = await client.post("/v1/clinics/nope/events", data=raw, headers=signed(raw))
        assert (await _answer(forged))[0] == 401
        assert await _answer(forged) == await _answer(unknown)

    async def test_the_content_type_counts_only_once_signed(self, client: AppClient) -> None:
        """Unsigned text/plain answers one 401 whether the clinic exists or not (it was 415
        for a known clinic, 401 for an unknown one); signed, it is 415."""
        plain = {"content-type": "text/plain"}
        known = await client.post("/v1/clinics/glow/events", data=b"hi", headers=plain)
        unknown = await client.post("/v1/clinics/nope/events", data=b"hi", headers=plain)
        assert (await _answer(known))[0] == 401
        assert await _answer(known) == await _answer(unknown)
        raw = encode(completed_event())
        headers = {**signed(raw), "content-type": "text/plain"}
        assert (
            await client.post("/v1/clinics/glow/events", data=raw, headers=headers)
        ).status == 415


class TestRateLimit:
    async def test_beyond_the_burst_429_with_retry_after_and_nothing_stored(
        self, client: AppClient
    ) -> None:
        """1/h: a burst of 2 passes, the third waits about an hour and leaves nothing."""
        bodies = [completed_event() for _ in range(3)]
        statuses = [(await post_event(client, body)).status for body in bodies[:2]]
        assert statuses == [202, 202]
        refused = await post_event(client, bodies[2])
        assert refused.status == 429
        assert refused.headers["Content-Type"] == "application/problem+json"
        assert 3000 < int(refused.headers["Retry-After"]) <= 3600
        treatment = bodies[2]["data"]["treatment"]["id"]
        url = f"/v1/clinics/glow/treatments/{treatment}"
        assert (await client.get(url, headers=bearer(TOKEN))).status == 404
        metrics = await (await client.get("/metrics")).text()
        assert 'aftercare_events_total{outcome="rejected_429",type="unknown"} 1.0' in metrics

    def test_the_bucket_refills_at_the_rate_up_to_the_burst(self) -> None:
        """2/s, burst 4: four at once, then one every half second; idle time fills no more
        than the burst."""
        bucket = TokenBucket(Rate(per_second=2.0, burst=4), now=0.0)
        assert [bucket.take(0.0) for _ in range(4)] == [0.0] * 4
        assert bucket.take(0.0) == pytest.approx(0.5)
        assert bucket.take(0.5) == 0.0
        assert bucket.take(100.0) == 0.0
        assert [bucket.take(100.0) for _ in range(4)] == [0.0, 0.0, 0.0, pytest.approx(0.5)]

    def test_retry_after_is_whole_seconds_at_least_one_per_clinic(self) -> None:
        """A wait of 0.1 s says 1; 2.5 s says 3; another clinic has its own bucket."""
        now = [0.0]
        limits = RateLimits({"a": Rate(10.0, 1), "b": Rate(0.4, 1)}, clock=lambda: now[0])
        assert (limits.admit("a"), limits.admit("a")) == (0, 1)
        assert (limits.admit("b"), limits.admit("b")) == (0, 3)
        now[0] = 0.1
        assert limits.admit("a") == 0


class TestServerHeader:
    async def test_no_versions_on_any_answer(self, client: AppClient) -> None:
        """200, 404, 405, 401, 413 and 429 alike say `Server: aftercare`."""
        big = b"x" * (70 * 1024)
        answers = [
            await client.get("/healthz"),
            await client.get("/nowhere"),
            await client.put("/v1/clinics/glow/events", data=b"{}"),
            await client.post("/v1/clinics/nope/events", data=b"{}"),
            await client.post("/v1/clinics/glow/events", data=big),
        ]
        assert [a.status for a in answers] == [200, 404, 405, 401, 413]
        for answer in answers:
            assert answer.headers.getall("Server") == ["aftercare"]

    async def test_not_even_to_a_request_aiohttp_cannot_parse(self, client: AppClient) -> None:
        """A malformed request line is answered 400 by aiohttp itself, before the app."""
        reader, writer = await asyncio.open_connection(client.host, client.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n")
        head = (await asyncio.wait_for(reader.read(4096), 5)).split(b"\r\n\r\n")[0]
        writer.close()
        assert head.split(b"\r\n")[0].endswith(b" 400 Bad Request")
        assert b"aiohttp" not in head.lower() and b"python" not in head.lower()
