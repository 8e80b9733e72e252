"""patient.updated from a clinic system (contract §5): a new phone applies to unsent messages only
(and a number that said STOP gets nothing), a new name or locale to texts not yet sent, withdrawn
consent cancels every scheduled message and consent given again plans later events; an unknown or
another clinic's patient is a 422, an update that changes nothing changes no message, a replay
answers the first answer, and a wrong field is a 422 naming it. Signed events through the real app
on a fresh database of each kind; the clock stands at 2026-11-25 15:00 UTC, the moment the treatment
completed (07:00 in Los Angeles)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from sqlmodel import Session, select

from service.storage.models import Event, Message, OptOut, Patient, Status
from service.web.keys import TRANSACTIONS
from tests.conftest import AppClient
from tests.fixtures.corrections import COMPLETED, plan, stored
from tests.helpers.client import move_message, post_event, treatment_messages
from tests.helpers.events import patient_updated_event
from tests.support import OTHER_SECRET, PHONE

NEW_PHONE = "+14155550199"


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

        def _tx2(s: Session) -> dict[str, str]:
            phones = dict(s.exec(select(Message.id, Message.phone)).all())
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

        def _tx4(s: Session) -> dict[str, str]:
            bodies = dict(s.exec(select(Message.id, Message.body)).all())
            return bodies

        bodies = await client.app[TRANSACTIONS].read(_tx4)
        assert bodies[first] == "Hi Ana, no makeup for 24 hours."
        assert bodies[rest[0]] == "Time for your hyaluronic acid serum, Anabel."

    async def test_new_locale_switches_the_language(self, client: AppClient) -> None:
        """A patient now reading German gets the German texts from then on."""
        await plan(client)
        await post_event(client, patient_updated_event(locale="de"))

        def _tx5(s: Session) -> Sequence[tuple[str, str]]:
            rows = s.exec(select(Message.locale, Message.body)).all()
            return rows

        rows = await client.app[TRANSACTIONS].read(_tx5)
        assert {locale for locale, _ in rows} == {"de"}
        assert "Zeit für Ihr hyaluronic acid serum, Ana." in {body for _, body in rows}


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
