"""Corrections from clinic systems (SPEC §5): treatment.cancelled and patient.updated.

Signed events through the real app and real SQLite; the clock stands at 2026-11-25 15:00 UTC,
the moment the treatment completed (07:00 in Los Angeles), unless a test moves it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from service.config import Settings
from service.storage.models import Event, Message, OptOut, Patient, Status
from service.web.keys import TRANSACTIONS
from tests.conftest import AppClient
from tests.helpers.client import move_message, post_completed, post_event, treatment_messages
from tests.helpers.events import cancelled_event, completed_event, patient_updated_event
from tests.support import OTHER_SECRET, PHONE, FakeClock, config_data, make_settings

COMPLETED = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
NEW_PHONE = "+14155550199"


async def plan(client: AppClient, treatment_id: str = "tr_1", **patient: Any) -> list[str]:
    """Plan a treatment completed at COMPLETED for pt_77; its message ids in plan order."""
    treatment = {"id": treatment_id, "completed_at": COMPLETED.isoformat()}
    answer = await post_completed(client, treatment, patient)
    return [m["id"] for m in answer["messages"]]


async def by_step(client: AppClient, step: str, treatment_id: str = "tr_1") -> list[str]:
    """The send_at of a step's messages, in order."""
    return [
        m["send_at"]
        for m in (await treatment_messages(client, treatment_id)).values()
        if m["step"] == step
    ]


async def stored(client: AppClient, table: Any) -> int:
    def _tx(s: Session) -> Any:
        return int((s.exec(sa.select(sa.func.count()).select_from(table))).one()[0])

    return await client.app[TRANSACTIONS].read(_tx)


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


class TestPhoneChange:
    async def test_new_phone_applies_to_unsent_messages_only(self, client: AppClient) -> None:
        """Messages not yet sent go to the new number; sent ones keep the one they went to."""
        first, second, *rest = await plan(client)
        await move_message(client, first, Status.SENDING, Status.SENT)
        await move_message(client, second, Status.SENDING)
        response = await post_event(client, patient_updated_event(phone=NEW_PHONE))
        assert response.status == 202
        found = await treatment_messages(client)
        assert found[first]["to"] == found[second]["to"] == "•••••••0123"
        assert {found[m]["to"] for m in rest} == {"•••••••0199"}
        assert found[rest[0]]["history"][-1]["detail"] == "patient.updated: new phone"

        def _tx2(s: Session) -> Any:
            phones = dict(s.exec(sa.select(Message.id, Message.phone)).all())
            return phones

        phones = await client.app[TRANSACTIONS].read(_tx2)
        assert phones[first] == PHONE and {phones[m] for m in rest} == {NEW_PHONE}

    async def test_answer_lists_the_changed_messages_and_masks_numbers(
        self, client: AppClient
    ) -> None:
        """The answer names the patient (phone masked) and each message that changed."""
        first, *rest = await plan(client)
        await move_message(client, first, Status.SENDING, Status.SENT)
        response = await post_event(
            client, patient_updated_event(phone=NEW_PHONE), msg_id="evt_phone"
        )
        text = await response.text()
        answer = await response.json()
        assert (answer["event_id"], answer["type"]) == ("evt_phone", "patient.updated")
        assert answer["patient"]["phone"] == "•••••••0199"
        assert [m["id"] for m in answer["messages"]] == rest
        assert NEW_PHONE not in text and NEW_PHONE[1:] not in text and PHONE not in text

    async def test_a_new_number_that_said_stop_gets_nothing(self, client: AppClient) -> None:
        """Moving to a number opted out at this clinic cancels the scheduled messages."""
        await plan(client)

        def _tx3(s: Session) -> Any:
            s.add(OptOut(clinic_id="glow", phone=NEW_PHONE, at=COMPLETED, source="test"))

        await client.app[TRANSACTIONS].write(_tx3)
        await post_event(client, patient_updated_event(phone=NEW_PHONE))
        found = (await treatment_messages(client)).values()
        assert {(m["status"], m["reason"]) for m in found} == {
            ("cancelled", "number opted out (STOP)")
        }


class TestNameAndLocaleChange:
    async def test_new_name_is_used_in_texts_not_yet_sent(self, client: AppClient) -> None:
        """Scheduled texts are rendered again with the new name; a sent one is not."""
        first, *rest = await plan(client)
        await move_message(client, first, Status.SENDING, Status.SENT)
        await post_event(client, patient_updated_event(first_name="Anabel"))

        def _tx4(s: Session) -> Any:
            bodies = dict(s.exec(sa.select(Message.id, Message.body)).all())
            return bodies

        bodies = await client.app[TRANSACTIONS].read(_tx4)
        assert bodies[first] == "Hi Ana, no makeup for 24 hours."
        assert bodies[rest[0]] == "Time for your hyaluronic acid serum, Anabel."

    async def test_new_locale_switches_the_language(self, client: AppClient) -> None:
        """A patient now reading German gets the German texts from then on."""
        await plan(client)
        await post_event(client, patient_updated_event(locale="de"))

        def _tx5(s: Session) -> Any:
            rows = s.exec(sa.select(Message.locale, Message.body)).all()
            return rows

        rows = await client.app[TRANSACTIONS].read(_tx5)
        assert {locale for locale, _ in rows} == {"de"}
        assert "Zeit für Ihr hyaluronic acid serum, Ana." in {body for _, body in rows}


class TestTimeZoneChange:
    async def test_local_clock_steps_follow_the_new_zone(self, client: AppClient) -> None:
        """Serum reminders at 08:30 and 20:30 move to those hours in Berlin."""
        await plan(client)
        tonight = await by_step(client, "tonight")
        response = await post_event(client, patient_updated_event(timezone="Europe/Berlin"))
        assert response.status == 202
        assert await by_step(client, "serum") == [
            "2026-11-26T07:30:00Z",
            "2026-11-26T19:30:00Z",
            "2026-11-27T07:30:00Z",
            "2026-11-27T19:30:00Z",
        ]
        assert await by_step(client, "tonight") == tonight
        serum = [m for m in (await treatment_messages(client)).values() if m["step"] == "serum"]
        assert serum[0]["history"][-1]["detail"] == "patient.updated: re-planned in Europe/Berlin"

    async def test_quiet_hours_of_the_new_zone_apply_to_every_step(self, client: AppClient) -> None:
        """A message that would now fall at night in Tokyo moves to 08:00 there."""
        await plan(client)
        await post_event(client, patient_updated_event(timezone="Asia/Tokyo"))
        assert await by_step(client, "tonight") == ["2026-11-25T23:00:00Z"]  # 08:00 JST
        assert (await by_step(client, "serum"))[0] == "2026-11-26T23:30:00Z"  # 08:30 JST

    async def test_sent_reminders_are_not_planned_again(self, client: AppClient) -> None:
        """A reminder already sent stays as sent; only the ones still to come move."""
        ids = await plan(client)
        first_serum = ids[1]
        await move_message(client, first_serum, Status.SENDING, Status.SENT)
        await post_event(client, patient_updated_event(timezone="Europe/Berlin"))
        assert await by_step(client, "serum") == [
            "2026-11-26T16:30:00Z",
            "2026-11-26T19:30:00Z",
            "2026-11-27T07:30:00Z",
            "2026-11-27T19:30:00Z",
        ]
        assert len(await treatment_messages(client)) == len(ids)

    async def test_a_time_long_past_in_the_new_zone_expires(
        self, make_client: Any, settings: Any
    ) -> None:
        """A reminder whose new time is past its expiry is never sent late."""
        client = await make_client(settings, clock=FakeClock(COMPLETED + timedelta(hours=24)))
        ids = await plan(client)  # 07:00 in Los Angeles, a day after the treatment
        await post_event(client, patient_updated_event(timezone="Europe/Berlin"))
        found = await treatment_messages(client)
        first_serum = found[ids[1]]
        assert (first_serum["status"], first_serum["send_at"]) == (
            "expired",
            "2026-11-26T07:30:00Z",
        )
        assert first_serum["reason"] == "its time had passed in the patient's new time zone"

    async def test_a_time_just_past_in_the_new_zone_goes_out_at_once(
        self, make_client: Any, database: str
    ) -> None:
        """A reminder held by quiet hours in the old zone but due already in the new one
        (and not yet expired) is armed and sent at once, on the real clock."""
        now = datetime.now(UTC)
        clinics = config_data(database)["clinics"]
        clinics["glow"]["quiet_hours"] = {
            "start": f"{now - timedelta(hours=3):%H:%M}",
            "end": f"{now + timedelta(hours=2):%H:%M}",
        }
        step = {
            "key": "soon",
            "kind": "aftercare",
            "after": "1h",
            "expires_after": "6h",
            "text": "Hi {first_name}.",
        }
        client = await make_client(
            make_settings(
                database, clinics=clinics, protocols={"mn": {"title": "Soon", "steps": [step]}}
            )
        )
        completed = (now - timedelta(hours=2)).isoformat()
        body = completed_event(
            treatment={"id": "tr_1", "completed_at": completed}, patient={"timezone": "UTC"}
        )
        [held] = (await (await post_event(client, body)).json())["messages"]
        assert held["status"] == "scheduled" and held["send_at"] > f"{now:%Y-%m-%dT%H:%M}"
        # Twelve hours east the same instant is mid-afternoon, far from quiet hours.
        await post_event(client, patient_updated_event(timezone="Etc/GMT-12"))
        assert await eventually_status(client, held["id"]) == "sent"


class TestTimeZoneChangeOfTheTreatmentDay:
    @pytest.fixture
    def settings(self, database: str) -> Settings:
        """One reminder at 20:30 local on the treatment day and the day after."""
        step = {
            "key": "evening",
            "kind": "serum",
            "days": "0-1",
            "at": ["20:30"],
            "text": "Serum time, {first_name}.",
        }
        return make_settings(database, protocols={"mn": {"title": "Evening", "steps": [step]}})

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock(datetime(2026, 11, 25, 20, 1, tzinfo=UTC))

    async def test_times_only_the_new_zone_has_are_added_and_the_rest_cancelled(
        self, client: AppClient
    ) -> None:
        """Treated at 21:00 in Berlin: one reminder; in Los Angeles (12:00) there are two,
        and back in Berlin the second is cancelled."""
        body = completed_event(
            treatment={"id": "tr_1", "completed_at": "2026-11-25T20:00:00Z"},
            patient={"timezone": "Europe/Berlin"},
        )
        assert len((await (await post_event(client, body)).json())["messages"]) == 1
        answer = await (
            await post_event(client, patient_updated_event(timezone="America/Los_Angeles"))
        ).json()
        assert len(answer["messages"]) == 2
        assert await by_step(client, "evening") == ["2026-11-26T04:30:00Z", "2026-11-27T04:30:00Z"]
        await post_event(client, patient_updated_event(timezone="Europe/Berlin"))
        found = sorted(
            (m["send_at"], m["status"]) for m in (await treatment_messages(client)).values()
        )
        assert found == [
            ("2026-11-26T19:30:00Z", "scheduled"),
            ("2026-11-27T04:30:00Z", "cancelled"),
        ]


class TestConsent:
    async def test_withdrawn_consent_cancels_every_scheduled_message(
        self, client: AppClient
    ) -> None:
        """All of the patient's scheduled messages, of every treatment, are cancelled."""
        await plan(client, "tr_1")
        await plan(client, "tr_2")
        await plan(client, "tr_3", id="pt_88", phone="+14155550188")
        await post_event(client, patient_updated_event(sms_consent=False))
        for treatment in ("tr_1", "tr_2"):
            found = (await treatment_messages(client, treatment)).values()
            assert {(m["status"], m["reason"]) for m in found} == {
                ("cancelled", "consent withdrawn")
            }
        assert {m["status"] for m in (await treatment_messages(client, "tr_3")).values()} == {
            "scheduled"
        }

    async def test_consent_given_again_plans_later_events(self, client: AppClient) -> None:
        """Cancelled messages stay cancelled; the next treatment is planned as usual."""
        await plan(client, "tr_1")
        await post_event(client, patient_updated_event(sms_consent=False))
        await post_event(client, patient_updated_event(sms_consent=True))
        await plan(client, "tr_2")
        assert {m["status"] for m in (await treatment_messages(client, "tr_1")).values()} == {
            "cancelled"
        }
        assert {m["status"] for m in (await treatment_messages(client, "tr_2")).values()} == {
            "scheduled"
        }


class TestPatientUpdated:
    async def test_unknown_patient_is_422_and_stores_nothing(self, client: AppClient) -> None:
        """An update for a patient the clinic never reported names the id and stores nothing."""
        response = await post_event(client, patient_updated_event("pt_404", first_name="X"))
        assert response.status == 422
        assert (await response.json())["errors"][0]["field"] == "data.patient.id"
        assert await stored(client, Event) == await stored(client, Patient) == 0

    async def test_another_clinic_cannot_update_this_clinics_patient(
        self, client: AppClient
    ) -> None:
        """Clinic B's update of clinic A's patient id finds no such patient."""
        await plan(client)
        response = await post_event(
            client, patient_updated_event(phone=NEW_PHONE), clinic="other", secret=OTHER_SECRET
        )
        assert response.status == 422
        assert {m["to"] for m in (await treatment_messages(client)).values()} == {"•••••••0123"}

    async def test_an_update_that_changes_nothing_changes_no_message(
        self, client: AppClient
    ) -> None:
        """The same details again are accepted and touch no message."""
        await plan(client)
        response = await post_event(
            client,
            patient_updated_event(first_name="Ana", phone=PHONE, timezone="America/Los_Angeles"),
        )
        assert response.status == 202
        assert (await response.json())["messages"] == []
        assert all(len(m["history"]) == 1 for m in (await treatment_messages(client)).values())

    async def test_replay_answers_the_first_answer(self, client: AppClient) -> None:
        """The same webhook-id and body answers 200 with the first answer; another body 409."""
        await plan(client)
        body = patient_updated_event(first_name="Anabel")
        first = await post_event(client, body, msg_id="evt_upd")
        again = await post_event(client, body, msg_id="evt_upd")
        assert (first.status, again.status) == (202, 200)
        assert await again.json() == await first.json()
        other = await post_event(client, patient_updated_event(first_name="Bel"), msg_id="evt_upd")
        assert other.status == 409

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("phone", "4155550123"),
            ("phone", "+18005550123"),
            ("timezone", "Mars/Olympus"),
            ("sms_consent", "no"),
            ("first_name", ""),
            ("locale", "!!"),
        ],
    )
    async def test_wrong_field_is_422_naming_it(
        self, client: AppClient, field: str, value: Any
    ) -> None:
        """Each wrong field is refused by name, and the patient is unchanged."""
        await plan(client)
        response = await post_event(client, patient_updated_event(**{field: value}))
        assert response.status == 422
        problem = await response.json()
        assert f"data.patient.{field}" in [e["field"] for e in problem["errors"]]
        assert all(len(m["history"]) == 1 for m in (await treatment_messages(client)).values())


async def eventually_status(
    client: AppClient, message_id: str, *, until: str = "sent", timeout: float = 10.0
) -> str:
    """The message's status once it reaches `until` (or whatever it is after `timeout`)."""
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:

        def _tx6(s: Session) -> Any:
            status = s.get(Message, message_id).status  # type: ignore[union-attr]
            return status

        status = await client.app[TRANSACTIONS].read(_tx6)
        if status == until or loop.time() > deadline:
            return str(status)
        await asyncio.sleep(0.05)
