"""Tenant isolation on every clinic endpoint of the clinic API (contract §8): a clinic sees and
changes only its own treatments and patients; a missing or wrong token is a 401, another clinic's
token or an unknown clinic a 403, another clinic's ids are not found, and the same ids at two
clinics stay apart."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import AppClient
from tests.fixtures.clinic_api import get, plan
from tests.helpers.client import bearer
from tests.support import OTHER_TOKEN, TOKEN

ENDPOINTS = [
    ("GET", "/v1/clinics/{clinic}/treatments/tr_1"),
    ("POST", "/v1/clinics/{clinic}/treatments/tr_1/cancel"),
    ("GET", "/v1/clinics/{clinic}/patients/pt_77/messages"),
    ("GET", "/v1/clinics/{clinic}/messages"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
class TestTenantIsolation:
    @pytest.mark.parametrize(
        "headers", [{}, bearer("wrong"), {"Authorization": TOKEN}, bearer(TOKEN + "x"), bearer("")]
    )
    async def test_missing_or_wrong_token_is_401(
        self, client: AppClient, method: str, path: str, headers: dict[str, str]
    ) -> None:
        """Without one of the clinic's tokens: 401 problem, and nothing changes."""
        await plan(client, "tr_1")
        response = await client.request(method, path.format(clinic="glow"), headers=headers)
        assert response.status == 401
        assert response.content_type == "application/problem+json"
        await assert_untouched(client)

    async def test_another_clinics_token_is_403(
        self, client: AppClient, method: str, path: str
    ) -> None:
        """Clinic B's token on clinic A's paths: 403, and nothing changes."""
        await plan(client, "tr_1")
        response = await client.request(
            method, path.format(clinic="glow"), headers=bearer(OTHER_TOKEN)
        )
        assert response.status == 403
        await assert_untouched(client)

    async def test_own_token_on_an_unknown_clinic_is_403(
        self, client: AppClient, method: str, path: str
    ) -> None:
        """A valid token on a clinic path that is not its own is refused the same way."""
        response = await client.request(method, path.format(clinic="nobody"), headers=bearer(TOKEN))
        assert response.status == 403

    async def test_another_clinics_ids_are_not_found(
        self, client: AppClient, method: str, path: str
    ) -> None:
        """Clinic B asking for clinic A's ids on its own paths finds nothing of A's."""
        await plan(client, "tr_1")
        response = await client.request(
            method, path.format(clinic="other"), headers=bearer(OTHER_TOKEN)
        )
        if path.endswith("/messages") and "patients" not in path:
            assert response.status == 200
            assert (await response.json())["messages"] == []
        else:
            assert response.status == 404
        await assert_untouched(client)

    async def test_same_ids_at_two_clinics_stay_apart(
        self, client: AppClient, method: str, path: str
    ) -> None:
        """Two clinics using the same treatment and patient ids each see only their own."""
        glow = await plan(client, "tr_1")
        other = await plan(client, "tr_1", clinic="other")
        response = await client.request(
            method, path.format(clinic="other"), headers=bearer(OTHER_TOKEN)
        )
        assert response.status == 200
        assert {m["id"] for m in (await response.json())["messages"]} == set(other)
        assert {m["status"] for m in await glow_messages(client)} == {"scheduled"}
        assert {m["id"] for m in await glow_messages(client)} == set(glow)


async def glow_messages(client: AppClient) -> list[dict[str, Any]]:
    found = await (await get(client, "/v1/clinics/glow/treatments/tr_1")).json()
    messages: list[dict[str, Any]] = found["messages"]
    return messages


async def assert_untouched(client: AppClient) -> None:
    """Clinic glow's treatment tr_1 (if planned) still has every message scheduled."""
    response = await get(client, "/v1/clinics/glow/treatments/tr_1")
    if response.status == 200:
        assert {m["status"] for m in await glow_messages(client)} == {"scheduled"}
