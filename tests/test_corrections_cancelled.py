"""treatment.cancelled from a clinic system (contract §5): the treatment's scheduled messages are
cancelled with the reason why, those already sending or sent left alone; an unknown treatment is a
422 that stores nothing; cancelling twice or replaying changes nothing more, a completed event after
the cancel plans nothing, and another clinic cannot cancel it. Signed events through the real app on
a fresh database of each kind; the clock stands at 2026-11-25 15:00 UTC, the moment the treatment
completed.
"""

from __future__ import annotations

from service.storage.models import Event, Status
from tests.conftest import AppClient
from tests.fixtures.corrections import COMPLETED, plan, stored
from tests.helpers.client import move_message, post_event, treatment_messages
from tests.helpers.events import cancelled_event, completed_event
from tests.support import OTHER_SECRET


class TestTreatmentCancelled:
    async def test_scheduled_messages_become_cancelled(self, client: AppClient) -> None:
        """Every scheduled message of the treatment is cancelled, with the reason why."""
        await plan(client)
        response = await post_event(client, cancelled_event("tr_1"), msg_id="evt_cancel")
        assert response.status == 202
        answer = await response.json()
        assert (answer["event_id"], answer["type"]) == ("evt_cancel", "treatment.cancelled")
        assert answer["treatment"]["cancelled_at"] == "2026-11-25T15:00:00Z"
        assert {(m["status"], m["reason"]) for m in answer["messages"]} == {
            ("cancelled", "treatment cancelled")
        }
        history = next(iter((await treatment_messages(client)).values()))["history"]
        assert history[-1]["detail"] == "treatment cancelled (event evt_cancel)"

    async def test_messages_already_sending_or_sent_are_left_alone(self, client: AppClient) -> None:
        """A message in `sending` cannot be recalled and a sent one is history: both stay."""
        first, second, *rest = await plan(client)
        await move_message(client, first, Status.SENDING, Status.SENT)
        await move_message(client, second, Status.SENDING)
        await post_event(client, cancelled_event("tr_1"))
        found = await treatment_messages(client)
        assert (found[first]["status"], found[second]["status"]) == ("sent", "sending")
        assert {found[m]["status"] for m in rest} == {"cancelled"}

    async def test_unknown_treatment_is_422_and_stores_nothing(self, client: AppClient) -> None:
        """A cancellation of a treatment the clinic never reported names the id, stores
        nothing, and so succeeds when the sender retries after the treatment arrives."""
        response = await post_event(client, cancelled_event("tr_1"), msg_id="evt_early")
        assert response.status == 422
        problem = await response.json()
        assert problem["errors"][0]["field"] == "data.treatment.id"
        assert await stored(client, Event) == 0
        await plan(client)
        retried = await post_event(client, cancelled_event("tr_1"), msg_id="evt_early")
        assert retried.status == 202

    async def test_cancelling_twice_changes_nothing_more(self, client: AppClient) -> None:
        """A second cancellation (a new event) finds nothing left to cancel."""
        await plan(client)
        first = await (await post_event(client, cancelled_event("tr_1"))).json()
        before = await treatment_messages(client)
        second = await post_event(client, cancelled_event("tr_1"))
        assert second.status == 202
        assert (await second.json())["messages"] == first["messages"]
        assert await treatment_messages(client) == before

    async def test_replay_answers_the_first_answer(self, client: AppClient) -> None:
        """The same webhook-id and body answers 200 with the first answer."""
        await plan(client)
        body = cancelled_event("tr_1")
        first = await post_event(client, body, msg_id="evt_1")
        again = await post_event(client, body, msg_id="evt_1")
        assert (first.status, again.status) == (202, 200)
        assert await again.json() == await first.json()
        other = await post_event(
            client, cancelled_event("tr_1", timestamp="2026-11-25T16:00:00Z"), msg_id="evt_1"
        )
        assert other.status == 409

    async def test_completed_again_after_cancel_plans_nothing(self, client: AppClient) -> None:
        """A treatment.completed for a cancelled treatment answers its cancelled plan."""
        ids = await plan(client)
        await post_event(client, cancelled_event("tr_1"))
        body = completed_event(treatment={"id": "tr_1", "completed_at": COMPLETED.isoformat()})
        again = await post_event(client, body)
        assert again.status == 200
        assert [m["id"] for m in (await again.json())["messages"]] == ids
        assert {m["status"] for m in (await again.json())["messages"]} == {"cancelled"}

    async def test_another_clinic_cannot_cancel_it(self, client: AppClient) -> None:
        """Clinic B's signed cancellation of clinic A's treatment id finds no such treatment."""
        await plan(client)
        response = await post_event(
            client, cancelled_event("tr_1"), clinic="other", secret=OTHER_SECRET
        )
        assert response.status == 422
        assert {m["status"] for m in (await treatment_messages(client)).values()} == {"scheduled"}
