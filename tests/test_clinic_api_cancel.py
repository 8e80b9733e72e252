"""The cancel endpoint of the clinic API (contract §8): it answers the treatment as GET shows it
with its scheduled messages cancelled; a message already being sent cannot be recalled, cancelling
twice is harmless, and an unknown treatment is a 404 problem."""

from __future__ import annotations

from service.storage.models import Status
from tests.conftest import AppClient
from tests.fixtures.clinic_api import get, plan
from tests.helpers.client import bearer, move_message
from tests.support import TOKEN


class TestCancel:
    async def test_cancel_answers_the_treatment_with_its_messages_cancelled(
        self, client: AppClient
    ) -> None:
        """200 with the treatment as GET shows it: scheduled messages now cancelled."""
        ids = await plan(client, "tr_1")
        response = await client.post(
            "/v1/clinics/glow/treatments/tr_1/cancel", headers=bearer(TOKEN)
        )
        assert response.status == 200
        found = await response.json()
        assert found["treatment"]["cancelled_at"] == "2026-11-25T15:00:00Z"
        assert [m["id"] for m in found["messages"]] == ids
        assert {(m["status"], m["reason"]) for m in found["messages"]} == {
            ("cancelled", "treatment cancelled")
        }
        assert found["messages"][0]["history"][-1]["detail"] == "treatment cancelled (API)"
        assert found == await (await get(client, "/v1/clinics/glow/treatments/tr_1")).json()

    async def test_a_message_being_sent_cannot_be_recalled(self, client: AppClient) -> None:
        """A message already handed to the sender stays `sending`; sent ones stay sent."""
        first, second, *_ = await plan(client, "tr_1")
        await move_message(client, first, Status.SENDING, Status.SENT)
        await move_message(client, second, Status.SENDING)
        found = await (
            await client.post("/v1/clinics/glow/treatments/tr_1/cancel", headers=bearer(TOKEN))
        ).json()
        assert [m["status"] for m in found["messages"]] == ["sent", "sending"] + ["cancelled"] * 4

    async def test_cancelling_twice_is_harmless(self, client: AppClient) -> None:
        """A repeated cancel answers the same and adds no history."""
        await plan(client, "tr_1")
        url = "/v1/clinics/glow/treatments/tr_1/cancel"
        first = await (await client.post(url, headers=bearer(TOKEN))).json()
        again = await client.post(url, headers=bearer(TOKEN))
        assert again.status == 200
        assert await again.json() == first

    async def test_unknown_treatment_is_404(self, client: AppClient) -> None:
        """Cancelling an id the clinic does not have is a 404 problem."""
        response = await client.post(
            "/v1/clinics/glow/treatments/nope/cancel", headers=bearer(TOKEN)
        )
        assert response.status == 404
        assert response.content_type == "application/problem+json"
