"""`POST /v1/clinics/{clinic_id}/events` (contract §5), refused: a missing, malformed, wrong, stale
or tampered signature or an unknown clinic is a 401 that echoes no secret (a rotated secret still
verifies), and a wrong content type, a body over the limit, JSON that is no event or a wrong field a
415, 413 or 422 naming it; each a problem+json that stored nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import AppClient
from tests.fixtures.events import URL, client, counts, post
from tests.helpers.events import completed_event, encode, signed
from tests.support import OLD_SECRET, OTHER_SECRET, SECRET

__all__ = ["client"]  # the fixture, from tests/fixtures/events.py

# Instants valid in their own offset and outside UTC's years 1 to 9999, and one inside them whose
# plan, in Los Angeles, fell before datetime's first day (all three were 500s); and the last second
# before the range, which was accepted.
EARLIEST = "0001-01-01T00:01:01+01:00"
LATEST = "9999-12-31T23:59:59-01:00"
YEAR_1 = "0001-01-01T00:01:00Z"
BEFORE_1970 = "1969-12-31T23:59:59Z"


class TestSignature:
    @pytest.mark.parametrize("drop", ["webhook-id", "webhook-timestamp", "webhook-signature"])
    async def test_missing_header_is_401(self, client: AppClient, drop: str) -> None:
        """An event without one of the three signature headers is refused."""
        raw = encode(completed_event())
        headers = signed(raw)
        del headers[drop]
        response = await client.post(URL, data=raw, headers=headers)
        await assert_refused(client, response, 401)

    @pytest.mark.parametrize("signature", ["garbage", "v1,not-base64!!", "v1", "v2,abc", ""])
    async def test_malformed_signature_is_401(self, client: AppClient, signature: str) -> None:
        """A malformed signature header is refused, never a 500."""
        raw = encode(completed_event())
        headers = {**signed(raw), "webhook-signature": signature}
        await assert_refused(client, await client.post(URL, data=raw, headers=headers), 401)

    async def test_wrong_secret_is_401(self, client: AppClient) -> None:
        """An event signed with another clinic's secret is refused."""
        await assert_refused(
            client, await post(client, completed_event(), secret=OTHER_SECRET), 401
        )

    @pytest.mark.parametrize("skew", [timedelta(minutes=-6), timedelta(minutes=6)])
    async def test_stale_or_future_timestamp_is_401(
        self, client: AppClient, skew: timedelta
    ) -> None:
        """A timestamp more than five minutes off is refused."""
        response = await post(client, completed_event(), at=datetime.now(UTC) + skew)
        await assert_refused(client, response, 401)

    async def test_tampered_body_is_401(self, client: AppClient) -> None:
        """A body changed after signing is refused."""
        raw = encode(completed_event())
        headers = signed(raw)
        await assert_refused(client, await client.post(URL, data=raw + b" ", headers=headers), 401)

    async def test_rotated_secret_is_accepted(self, client: AppClient) -> None:
        """Any of the clinic's secrets verifies, so secrets rotate without downtime."""
        assert (await post(client, completed_event(), secret=OLD_SECRET)).status == 202
        assert (await post(client, completed_event(), secret=SECRET)).status == 202

    async def test_unknown_clinic_is_401(self, client: AppClient) -> None:
        """An event for a clinic this service does not know is refused."""
        raw = encode(completed_event())
        response = await client.post("/v1/clinics/nobody/events", data=raw, headers=signed(raw))
        await assert_refused(client, response, 401)

    async def test_error_body_echoes_no_secret(self, client: AppClient) -> None:
        """A refusal says nothing of the secrets."""
        response = await post(client, completed_event(), secret=OTHER_SECRET)
        text = await response.text()
        assert SECRET not in text and OTHER_SECRET not in text and "whsec" not in text


class TestBadInput:
    async def test_wrong_content_type_is_415(self, client: AppClient) -> None:
        """An event not sent as application/json is refused."""
        raw = encode(completed_event())
        headers = {**signed(raw), "content-type": "text/plain"}
        await assert_refused(client, await client.post(URL, data=raw, headers=headers), 415)

    async def test_body_over_the_limit_is_413(self, client: AppClient) -> None:
        """A body over max_body_bytes is refused before it is read."""
        body = completed_event(padding="x" * 70_000)
        await assert_refused(client, await post(client, body), 413)

    async def test_not_json_is_422(self, client: AppClient) -> None:
        """A signed body that is not JSON is a 422 naming the body."""
        response = await post(client, b"{not json")
        problem = await assert_refused(client, response, 422)
        assert problem["errors"][0]["field"] == "body"

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"type": "treatment.started"}, "type"),
            ({"treatment": {"id": ""}}, "data.treatment.id"),
            ({"treatment": {"completed_at": "yesterday"}}, "data.treatment.completed_at"),
            ({"treatment": {"completed_at": "2026-11-25T14:30:00"}}, "data.treatment.completed_at"),
            ({"treatment": {"completed_at": EARLIEST}}, "data.treatment.completed_at"),
            ({"treatment": {"completed_at": YEAR_1}}, "data.treatment.completed_at"),
            ({"treatment": {"completed_at": BEFORE_1970}}, "data.treatment.completed_at"),
            ({"timestamp": EARLIEST}, "timestamp"),  # found by schemathesis: was a 500
            ({"timestamp": LATEST}, "timestamp"),
            ({"treatment": {"protocol": "botox"}}, "data.treatment.protocol"),
            ({"treatment": {"session_number": 4, "sessions_planned": 3}}, "data.treatment"),
            ({"patient": {"phone": "4155550123"}}, "data.patient.phone"),
            ({"patient": {"phone": "+1415555"}}, "data.patient.phone"),
            ({"patient": {"phone": "+18005550123"}}, "data.patient.phone"),
            ({"patient": {"phone": "+493012345678"}}, "data.patient.phone"),
            ({"patient": {"timezone": "Mars/Olympus"}}, "data.patient.timezone"),
            ({"patient": {"sms_consent": "yes"}}, "data.patient.sms_consent"),
            ({"patient": {"first_name": None}}, "data.patient.first_name"),
        ],
    )
    async def test_wrong_field_is_422_naming_it(
        self, client: AppClient, change: dict[str, Any], field: str
    ) -> None:
        """Each wrong field is a 422 naming the field, and nothing is stored."""
        body = completed_event(**change)
        problem = await assert_refused(client, await post(client, body), 422)
        assert field in [e["field"] for e in problem["errors"]], problem

    async def test_missing_fields_are_all_listed(self, client: AppClient) -> None:
        """Every missing field is listed, not only the first."""
        body = completed_event()
        del body["data"]["patient"]["phone"]
        del body["data"]["treatment"]["protocol"]
        problem = await assert_refused(client, await post(client, body), 422)
        fields = {e["field"] for e in problem["errors"]}
        assert {"data.patient.phone", "data.treatment.protocol"} <= fields

    async def test_completed_in_the_future_is_422(self, client: AppClient) -> None:
        """A treatment completed in the future cannot be planned."""
        later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
        body = completed_event(treatment={"completed_at": later})
        problem = await assert_refused(client, await post(client, body), 422)
        assert problem["errors"][0]["field"] == "data.treatment.completed_at"

    @pytest.mark.parametrize("raw", [b"[]", b"null", b"42", b'"text"', b"{}"])
    async def test_json_that_is_no_event_is_422(self, client: AppClient, raw: bytes) -> None:
        """JSON that is not an event object is refused and nothing is stored."""
        await assert_refused(client, await post(client, raw), 422)

    async def test_body_that_is_not_utf8_is_401(self, client: AppClient) -> None:
        """Bytes that cannot carry a valid signature are refused, never a 500."""
        headers = {
            "content-type": "application/json",
            "webhook-id": "x",
            "webhook-timestamp": str(int(datetime.now(UTC).timestamp())),
            "webhook-signature": "v1,AAAA",
        }
        await assert_refused(client, await client.post(URL, data=b"\xff\xfe", headers=headers), 401)


async def assert_refused(client: AppClient, response: Any, status: int) -> dict[str, Any]:
    """The answer is problem+json with `status`, and nothing was stored."""
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    problem: dict[str, Any] = json.loads(await response.text())
    assert problem["status"] == status
    assert {"type", "title", "status", "detail"} <= set(problem)
    assert set((await counts(client)).values()) == {0}
    return problem
