"""treatment.updated (contract §13): a corrected completed_at, sessions_planned or serum, followed
by the treatment's scheduled messages; sent ones untouched; refusals store nothing.

The clock stands at 2026-11-25 15:00 UTC (07:00 in Los Angeles). Protocol `mn`: `tonight`
2 h after (expires after 3 h), `serum` on days 1-2 at 08:30 and 20:30 local, `next` (rebook)
4 weeks after while sessions remain.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import select

from service.config import Settings
from service.storage.models import Event, Message, Status, Treatment
from service.web.keys import TRANSACTIONS
from tests.conftest import AppClient
from tests.helpers.client import move_message, post_completed, treatment_messages
from tests.helpers.series import booked_event, treatment_updated_event
from tests.support import FakeClock, config_data
from tests.test_appointments import at, count, send

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


async def complete(client: AppClient, completed_at: datetime, **treatment: Any) -> None:
    await post_completed(
        client, {"id": "tr_1", "completed_at": completed_at.isoformat(), **treatment}
    )


async def bodies(client: AppClient) -> dict[str, str]:
    """Every stored message's text, by id (the read API does not show texts)."""
    return await client.app[TRANSACTIONS].read(
        lambda s: {m.id: m.body for m in s.exec(select(Message)).all()}
    )


class TestCompletedAt:
    async def test_every_scheduled_message_moves_by_the_correction(self, client: AppClient) -> None:
        """Typed a day early: every scheduled message, local-clock ones too, moves a day on;
        the one already expired on arrival stays as it was."""
        await complete(client, NOW - timedelta(days=1))
        before = await treatment_messages(client)
        answer = await send(client, treatment_updated_event("tr_1", completed_at=NOW))
        assert answer["treatment"]["completed_at"] == "2026-11-25T15:00:00Z"
        after = await treatment_messages(client)
        scheduled = [i for i, m in before.items() if m["status"] == "scheduled"]
        assert len(scheduled) == 5  # four serum, next; `tonight` expired on arrival
        for message_id in scheduled:
            moved = at(after[message_id]["send_at"]) - at(before[message_id]["send_at"])
            assert moved == timedelta(days=1), after[message_id]["step"]
            assert after[message_id]["status"] == "scheduled"
            assert after[message_id]["history"][-1]["detail"] == (
                "treatment.updated: treatment corrected"
            )
        [tonight] = [m for m in after.values() if m["step"] == "tonight"]
        assert tonight == before[tonight["id"]]
        assert sorted(m["id"] for m in answer["messages"]) == sorted(scheduled)

    async def test_sent_messages_are_untouched(self, client: AppClient) -> None:
        await complete(client, NOW - timedelta(days=1))
        first = next(
            m for m in (await treatment_messages(client)).values() if m["status"] == "scheduled"
        )
        await move_message(client, first["id"], Status.SENDING, Status.SENT)
        await send(client, treatment_updated_event("tr_1", completed_at=NOW))
        assert (await treatment_messages(client))[first["id"]]["send_at"] == first["send_at"]

    async def test_a_time_moved_long_past_expires(
        self, client: AppClient, clock: FakeClock
    ) -> None:
        """Corrected a day earlier: `tonight` would have been due yesterday; it expires."""
        await complete(client, NOW)
        answer = await send(
            client, treatment_updated_event("tr_1", completed_at=NOW - timedelta(days=1))
        )
        [tonight] = [m for m in answer["messages"] if m["step"] == "tonight"]
        assert (tonight["status"], tonight["reason"]) == (
            "expired",
            "its time had passed after the correction",
        )

    async def test_a_completed_at_in_year_1_is_422_not_a_500(self, client: AppClient) -> None:
        """Planned in Los Angeles, 0001-01-01T00:01Z fell before datetime's first day: a 500."""
        await complete(client, NOW)
        before = await treatment_messages(client)
        body = treatment_updated_event("tr_1", completed_at=datetime(1, 1, 1, 0, 1, tzinfo=UTC))
        answer = await send(client, body, 422)
        assert [e["field"] for e in answer["errors"]] == ["data.treatment.completed_at"]
        assert "from 1970 to 8999" in answer["errors"][0]["message"]
        assert await treatment_messages(client) == before

    async def test_a_completed_at_in_the_future_is_422(self, client: AppClient) -> None:
        await complete(client, NOW)
        before = await treatment_messages(client)
        body = treatment_updated_event("tr_1", completed_at=NOW + timedelta(hours=1))
        answer = await send(client, body, 422)
        assert [e["field"] for e in answer["errors"]] == ["data.treatment.completed_at"]
        assert await treatment_messages(client) == before
        assert await count(client, Event) == 1


class TestQuietHoursRule:
    @pytest.fixture
    def settings(self, database: str) -> Settings:
        data = config_data(database)
        data["protocols"]["mn"]["steps"].append(
            {
                "key": "evening",
                "kind": "aftercare",
                "after": "14h",
                "in_quiet_hours": "skip",
                "text": "Evening note, {first_name}.",
            }
        )
        return Settings.model_validate(data)

    async def test_a_skip_step_moved_into_quiet_hours_is_cancelled(self, client: AppClient) -> None:
        """Typed an hour early, `evening` was 20:00 local; corrected it is 21:00, in quiet
        hours, and its step skips them."""
        await complete(client, NOW - timedelta(hours=1))
        answer = await send(client, treatment_updated_event("tr_1", completed_at=NOW))
        [evening] = [m for m in answer["messages"] if m["step"] == "evening"]
        assert (evening["status"], evening["reason"]) == ("cancelled", "quiet hours")


class TestSessionsPlanned:
    async def test_fewer_sessions_cancel_the_nudge_and_more_plan_it_again(
        self, client: AppClient
    ) -> None:
        await complete(client, NOW)
        await send(client, treatment_updated_event("tr_1", sessions_planned=1))
        [nudge] = [m for m in (await treatment_messages(client)).values() if m["kind"] == "rebook"]
        assert (nudge["status"], nudge["reason"]) == ("cancelled", "no more sessions planned")
        answer = await send(client, treatment_updated_event("tr_1", sessions_planned=4))
        [again] = answer["messages"]
        assert again["kind"] == "rebook" and again["status"] == "scheduled"
        assert again["send_at"] == nudge["send_at"]
        assert (await bodies(client))[again["id"]] == "Book session 2 of 4."

    async def test_more_sessions_plan_no_nudge_while_one_is_booked(self, client: AppClient) -> None:
        await complete(client, NOW, session_number=3, sessions_planned=3)
        await send(client, booked_event("ap_4", NOW + timedelta(days=20), session_number=4))
        answer = await send(client, treatment_updated_event("tr_1", sessions_planned=5))
        assert answer["messages"] == []

    async def test_fewer_than_the_session_number_is_422(self, client: AppClient) -> None:
        await complete(client, NOW, session_number=2)
        answer = await send(client, treatment_updated_event("tr_1", sessions_planned=1), 422)
        assert [e["field"] for e in answer["errors"]] == ["data.treatment.sessions_planned"]


class TestSerum:
    async def test_a_new_serum_is_rendered_into_scheduled_messages(self, client: AppClient) -> None:
        """Sent ones keep the text they went out with."""
        await complete(client, NOW)
        serum = [
            m["id"] for m in (await treatment_messages(client)).values() if m["step"] == "serum"
        ]
        await move_message(client, serum[0], Status.SENDING, Status.SENT)
        answer = await send(client, treatment_updated_event("tr_1", serum="copper peptide serum"))
        assert sorted(m["id"] for m in answer["messages"]) == sorted(serum[1:])
        texts = await bodies(client)
        assert texts[serum[0]] == "Time for your hyaluronic acid serum, Ana."
        assert {texts[i] for i in serum[1:]} == {"Time for your copper peptide serum, Ana."}


class TestRefusals:
    async def test_an_unknown_treatment_is_422(self, client: AppClient) -> None:
        answer = await send(client, treatment_updated_event("tr_nope", serum="x"), 422)
        assert [e["field"] for e in answer["errors"]] == ["data.treatment.id"]
        assert await count(client, Event) == 0

    async def test_an_update_that_gives_nothing_is_422(self, client: AppClient) -> None:
        await complete(client, NOW)
        answer = await send(client, treatment_updated_event("tr_1"), 422)
        assert [e["field"] for e in answer["errors"]] == ["data.treatment"]
        assert await count(client, Treatment) == 1

    async def test_a_replay_answers_the_first_answer(self, client: AppClient) -> None:
        await complete(client, NOW)
        body = treatment_updated_event("tr_1", serum="copper peptide serum")
        first = await send(client, body, msg_id="msg_fix")
        assert await send(client, body, 200, msg_id="msg_fix") == first
        other = treatment_updated_event("tr_1", serum="other serum")
        await send(client, other, 409, msg_id="msg_fix")
