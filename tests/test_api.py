"""The read API (contract §8) and the operations endpoints (contract §9)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import AppClient, MakeClient
from tests.helpers.events import completed_event, encode, signed
from tests.support import OTHER_TOKEN, PHONE, TOKEN, make_settings


@pytest.fixture
async def client(make_client: MakeClient, settings: Any) -> AppClient:
    return await make_client(settings)


async def planned(client: AppClient, **overrides: Any) -> dict[str, Any]:
    raw = encode(completed_event(**overrides))
    response = await client.post("/v1/clinics/glow/events", data=raw, headers=signed(raw))
    assert response.status == 202
    plan: dict[str, Any] = await response.json()
    return plan


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class TestTreatmentRead:
    async def test_treatment_with_messages_and_history(self, client: AppClient) -> None:
        """A clinic reads its treatment and each message with its history."""
        plan = await planned(client)
        url = f"/v1/clinics/glow/treatments/{plan['treatment']['id']}"
        response = await client.get(url, headers=bearer(TOKEN))
        assert response.status == 200
        found = await response.json()
        assert found["treatment"] == plan["treatment"]
        assert [m["id"] for m in found["messages"]] == [m["id"] for m in plan["messages"]]
        assert all(m["history"][0]["status"] == "scheduled" for m in found["messages"])

    async def test_phone_numbers_are_masked(self, client: AppClient) -> None:
        """Only the last four digits of the recipient are shown."""
        plan = await planned(client)
        url = f"/v1/clinics/glow/treatments/{plan['treatment']['id']}"
        text = await (await client.get(url, headers=bearer(TOKEN))).text()
        assert PHONE not in text and PHONE[1:] not in text
        assert "0123" in text

    @pytest.mark.parametrize(
        "headers",
        [{}, bearer("wrong"), {"Authorization": TOKEN}, {"Authorization": "Basic dG9rZW4="}],
    )
    async def test_missing_or_wrong_token_is_401(
        self, client: AppClient, headers: dict[str, str]
    ) -> None:
        """Without one of the clinic's tokens the answer is 401 problem+json."""
        plan = await planned(client)
        url = f"/v1/clinics/glow/treatments/{plan['treatment']['id']}"
        response = await client.get(url, headers=headers)
        assert response.status == 401
        assert response.content_type == "application/problem+json"

    async def test_another_clinics_token_is_403(self, client: AppClient) -> None:
        """A token of clinic B on clinic A's paths answers 403."""
        plan = await planned(client)
        url = f"/v1/clinics/glow/treatments/{plan['treatment']['id']}"
        assert (await client.get(url, headers=bearer(OTHER_TOKEN))).status == 403

    async def test_other_clinic_cannot_see_the_treatment_by_id(self, client: AppClient) -> None:
        """Clinic B asking for clinic A's treatment id on its own path gets 404."""
        plan = await planned(client)
        url = f"/v1/clinics/other/treatments/{plan['treatment']['id']}"
        assert (await client.get(url, headers=bearer(OTHER_TOKEN))).status == 404

    async def test_unknown_treatment_is_404(self, client: AppClient) -> None:
        """An id the clinic does not have answers 404 problem+json."""
        response = await client.get("/v1/clinics/glow/treatments/nope", headers=bearer(TOKEN))
        assert response.status == 404
        assert response.content_type == "application/problem+json"


class TestOperations:
    async def test_healthz_is_200(self, client: AppClient) -> None:
        """The process answers while it runs."""
        assert (await client.get("/healthz")).status == 200

    async def test_readyz_names_its_checks(self, client: AppClient) -> None:
        """Ready when the database answers and the scheduler runs."""
        response = await client.get("/readyz")
        assert response.status == 200
        assert await response.json() == {
            "status": "ok",
            "checks": {"database": "ok", "database_write": "ok", "scheduler": "ok"},
        }

    async def test_readyz_is_503_when_the_database_fails(
        self, make_client: Any, tmp_path: Path
    ) -> None:
        """A database that cannot be reached makes the service unready, naming the check."""
        settings = make_settings(tmp_path / "missing-dir" / "aftercare.db")
        client = await make_client(settings)
        response = await client.get("/readyz")
        assert response.status == 503
        body = await response.json()
        assert body["status"] == "unavailable"
        assert body["checks"]["database"].startswith("failing")
        assert body["checks"]["scheduler"] == "ok"

    async def test_unknown_path_is_404_problem(self, client: AppClient) -> None:
        """Even aiohttp's own errors are problem+json."""
        response = await client.get("/nowhere")
        assert response.status == 404
        assert response.content_type == "application/problem+json"

    async def test_wrong_method_is_405_problem(self, client: AppClient) -> None:
        """A wrong method says which are allowed."""
        response = await client.get("/v1/clinics/glow/events")
        assert response.status == 405
        assert "POST" in response.headers["Allow"]
