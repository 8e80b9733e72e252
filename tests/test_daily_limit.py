"""The patient's day (docs/day.md): past `sms.max_per_day` texts on a local day the
lowest-ranked are stored `cancelled` (`daily limit`), across every plan of the patient at the
clinic, again when a plan moves; and the answer to `treatment.completed` says which messages
merge (`merged_into`). Signed events through the real app on a fresh database of each kind;
the clock stands at 2026-11-25 15:00 UTC (07:00 in Los Angeles, the patient's zone).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from service.config import Settings
from service.web.openapi import document
from tests.conftest import AppClient
from tests.fixtures.conversations import NURSE, Start, alerted, start
from tests.fixtures.corrections import COMPLETED
from tests.helpers.client import post_completed, post_event, treatment_messages
from tests.helpers.events import completed_event, patient_updated_event
from tests.helpers.series import (
    appointment_cancelled_event,
    booked_event,
    treatment_updated_event,
)
from tests.support import FakeClock, make_settings

__all__ = ["start"]  # the conversations' fixture, from tests/fixtures/conversations.py


def step(key: str, kind: str, **when: Any) -> dict[str, Any]:
    return {"key": key, "kind": kind, "text": f"Hi {{first_name}}, {key}.", **when}


# Four texts on the local day after the treatment, one of each kind the limit ranks.
DAY = {
    "title": "A full day",
    "steps": [
        step("check-in", "checkin", days=[1], at=["10:00"]),
        step("note", "aftercare", days=[1], at=["12:00"]),
        step("serum", "serum", days=[1], at=["14:00"]),
        step("rebook", "rebook", days=[1], at=["16:00"]),
        step("prep", "prep", days_before=[1], at=["11:00"]),
    ],
}
# Two texts at 10:00 and 12:00 local on the treatment's day, one 20 h after it (in Los Angeles
# 03:00 the next day, deferred to 08:00; in Tokyo 20:00 on the day the first two move to).
ZONED = {
    "title": "Zoned",
    "steps": [
        step("check-in", "checkin", days=[0], at=["10:00"]),
        step("note", "aftercare", days=[0], at=["12:00"]),
        step("serum", "serum", after="20h"),
    ],
}
# Two steps 20 minutes apart, and one a day later.
CLOSE = {
    "title": "Close",
    "steps": [
        step("check-in", "checkin", after="2h"),
        step("note", "aftercare", after="2h20m"),
        step("serum", "serum", after="1d"),
    ],
}


def day_settings(database: str, **sms: Any) -> Settings:
    return make_settings(
        database,
        sms={"backend": "console", **sms},
        protocols={"day": DAY, "zoned": ZONED, "close": CLOSE},
    )


async def app(make_client: Any, database: str, **sms: Any) -> AppClient:
    client: AppClient = await make_client(day_settings(database, **sms), clock=FakeClock())
    return client


async def completed(client: AppClient, treatment_id: str, protocol: str) -> dict[str, Any]:
    treatment = {"id": treatment_id, "protocol": protocol, "completed_at": COMPLETED.isoformat()}
    answer: dict[str, Any] = await post_completed(client, treatment)
    return answer


def by_step(messages: Any) -> dict[str, tuple[str, str | None]]:
    return {m["step"]: (m["status"], m["reason"]) for m in messages}


SCHEDULED = ("scheduled", None)
LIMITED = ("cancelled", "daily limit")


class TestDailyLimit:
    async def test_past_the_limit_rebook_and_serum_are_cancelled(
        self, make_client: Any, database: str
    ) -> None:
        """A limit of 2 on a day of check-in, note, serum and rebook: the answer and the read
        API show serum and rebook cancelled `daily limit`, check-in and note scheduled."""
        client = await app(make_client, database, max_per_day=2)
        answer = await completed(client, "tr_1", "day")
        expected = {
            "check-in": SCHEDULED,
            "note": SCHEDULED,
            "serum": LIMITED,
            "rebook": LIMITED,
        }
        assert by_step(answer["messages"]) == expected
        stored = (await treatment_messages(client)).values()
        assert by_step(stored) == expected
        serum = next(m for m in stored if m["step"] == "serum")
        assert [h["status"] for h in serum["history"]] == ["cancelled"]  # stored so, at once

    async def test_without_a_limit_every_text_is_scheduled(
        self, make_client: Any, database: str
    ) -> None:
        """No `max_per_day`: the day is left as planned."""
        client = await app(make_client, database)
        answer = await completed(client, "tr_1", "day")
        assert set(by_step(answer["messages"]).values()) == {SCHEDULED}

    async def test_a_second_treatment_on_the_same_days_is_counted_with_the_first(
        self, make_client: Any, database: str
    ) -> None:
        """Two plans of 4 texts on one day with a limit of 4: the first plan's serum and
        rebook, already stored, are cancelled too; the check-ins and notes stay."""
        client = await app(make_client, database, max_per_day=4)
        first = await completed(client, "tr_1", "day")
        assert set(by_step(first["messages"]).values()) == {SCHEDULED}
        second = await completed(client, "tr_2", "day")
        expected = {
            "check-in": SCHEDULED,
            "note": SCHEDULED,
            "serum": LIMITED,
            "rebook": LIMITED,
        }
        assert by_step(second["messages"]) == expected
        stored = (await treatment_messages(client, "tr_1")).values()
        assert by_step(stored) == expected
        serum = next(m for m in stored if m["step"] == "serum")
        assert serum["history"][-1]["detail"] == "daily limit (treatment.completed)"

    async def test_a_new_time_zone_that_moves_texts_onto_one_day_applies_the_limit(
        self, make_client: Any, database: str
    ) -> None:
        """In Los Angeles the plan has 2 texts on one day and 1 the next; in Tokyo all three
        fall on one day, so with a limit of 2 the serum is cancelled `daily limit`."""
        client = await app(make_client, database, max_per_day=2)
        answer = await completed(client, "tr_1", "zoned")
        assert set(by_step(answer["messages"]).values()) == {SCHEDULED}
        response = await post_event(client, patient_updated_event(timezone="Asia/Tokyo"))
        assert response.status == 202, await response.text()
        changed = by_step((await response.json())["messages"])
        assert changed["serum"] == LIMITED
        stored = by_step((await treatment_messages(client)).values())
        assert stored == {"check-in": SCHEDULED, "note": SCHEDULED, "serum": LIMITED}


class TestCorrections:
    async def test_a_corrected_completed_at_that_moves_a_plan_onto_full_days(
        self, make_client: Any, database: str
    ) -> None:
        """Two plans a day apart fit a limit of 4; correcting the second's `completed_at` to
        the first's puts 8 texts on one day: both plans' serum and rebook are cancelled."""
        client = await app(make_client, database, max_per_day=4)
        await completed(client, "tr_1", "day")
        day_before = {
            "id": "tr_2",
            "protocol": "day",
            "completed_at": (COMPLETED - timedelta(days=1)).isoformat(),
        }
        await post_completed(client, day_before)
        moved = await post_event(client, treatment_updated_event("tr_2", completed_at=COMPLETED))
        assert moved.status == 202, await moved.text()
        expected = {"check-in": SCHEDULED, "note": SCHEDULED, "serum": LIMITED, "rebook": LIMITED}
        for treatment_id in ("tr_1", "tr_2"):
            stored = by_step((await treatment_messages(client, treatment_id)).values())
            assert stored == expected, treatment_id


class TestAppointments:
    async def test_prep_and_a_rebook_after_a_cancellation_are_limited_too(
        self, make_client: Any, database: str
    ) -> None:
        """A limit of 2, the day after the treatment full (check-in and note kept): the prep
        the day before a Friday session is cancelled `daily limit` when booked, and the rebook
        planned again when it is cancelled is too."""
        client = await app(make_client, database, max_per_day=2)
        await completed(client, "tr_1", "day")
        friday = datetime(2026, 11, 27, 10, tzinfo=ZoneInfo("America/Los_Angeles"))
        booked = await post_event(client, booked_event("ap_1", friday))
        assert booked.status == 202, await booked.text()
        assert by_step((await booked.json())["messages"]) == {"prep": LIMITED}
        cancelled = await post_event(client, appointment_cancelled_event("ap_1"))
        assert cancelled.status == 202, await cancelled.text()
        changed = by_step((await cancelled.json())["messages"])
        assert changed["rebook"] == LIMITED
        stored = by_step((await treatment_messages(client)).values())
        assert (stored["check-in"], stored["note"]) == (SCHEDULED, SCHEDULED)


class TestAlertsAndSentTexts:
    async def test_an_alert_neither_counts_nor_is_touched_and_a_sent_text_counts(
        self, start: Start
    ) -> None:
        """A check-in sent and answered "3" raises an alert the same day; with a limit of 2 a
        second treatment's check-in due today is still scheduled (the sent check-in counts,
        the alert does not), and the alert stays as it was."""
        c = await start(sms={"max_per_day": 2})
        first = await c.checked_in()
        await c.text("3")
        await alerted(c, 1)
        [alert] = [m for m in await c.messages(first) if m["kind"] == "alert"]
        second = await c.plan(due_in=60)
        [check_in] = [m for m in second["messages"] if m["kind"] == "checkin"]
        assert (check_in["status"], check_in["reason"]) == SCHEDULED
        [after] = [m for m in await c.messages(first) if m["kind"] == "alert"]
        assert after["status"] == alert["status"] and after["history"] == alert["history"]
        assert len(c.to(NURSE)) == 1

    async def test_a_text_sent_today_counts_against_the_limit(self, start: Start) -> None:
        """With a limit of 1, the check-in sent today leaves no room for another today: the
        second treatment's check-in is cancelled `daily limit`."""
        c = await start(sms={"max_per_day": 1})
        await c.checked_in()
        second = await c.plan(due_in=60)
        [check_in] = [m for m in second["messages"] if m["kind"] == "checkin"]
        assert (check_in["status"], check_in["reason"]) == LIMITED


class TestMergedInto:
    async def test_two_steps_within_the_window_merge_into_the_first(
        self, make_client: Any, database: str
    ) -> None:
        """With a 30-minute window the note 20 minutes after the check-in names the check-in
        in `merged_into`; the rest merge into nothing; a replay of the plan says the same."""
        client = await app(make_client, database, merge_window="30m")
        answer = await completed(client, "tr_1", "close")
        ids = {m["step"]: m["id"] for m in answer["messages"]}
        merged = {m["step"]: m["merged_into"] for m in answer["messages"]}
        assert merged == {"check-in": None, "note": ids["check-in"], "serum": None}
        again = completed_event(
            treatment={"id": "tr_1", "protocol": "close", "completed_at": COMPLETED.isoformat()}
        )
        replay = await post_event(client, again)
        assert replay.status == 200
        assert {m["step"]: m["merged_into"] for m in (await replay.json())["messages"]} == merged

    def test_the_openapi_document_describes_merged_into(self) -> None:
        """The plan's messages in the OpenAPI document carry `merged_into`, a string or null."""
        schema = document()["components"]["schemas"]["PlanMessage"]
        assert "merged_into" in schema["required"]
        assert schema["properties"]["merged_into"]["anyOf"] == [
            {"type": "string"},
            {"type": "null"},
        ]

    async def test_merging_off_merges_nothing(self, make_client: Any, database: str) -> None:
        """The default window (0s): every `merged_into` is null."""
        client = await app(make_client, database)
        answer = await completed(client, "tr_1", "close")
        assert [m["merged_into"] for m in answer["messages"]] == [None, None, None]
