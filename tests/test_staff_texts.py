"""A staff text (contract §16): the console's `Send` as a use case on the real app (the real twilio
client against a fake Twilio, SQLite and PostgreSQL): sent once by the claim path, with its
history, listed as kind `staff`; refused to an opted-out number; held by quiet hours unless
sent anyway; the footer on a first message in the patient's locale. The world is
tests/fixtures/staff_texts.py's; replies are tests/test_staff_text_replies.py's."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from service.conversations.staff_texts import Refusal, StaffTextRefused
from service.errors import NotFound, Unprocessable
from tests.fixtures.conversations import Start, start
from tests.fixtures.staff_texts import (
    NURSE_EMAIL,
    audit_rows,
    listed_staff,
    sent_to,
    staff_rows,
    staff_text,
    status_callback,
)
from tests.helpers.client import bearer, post_event
from tests.helpers.events import cancelled_event, patient_updated_event
from tests.processes import until_async as until
from tests.support import PHONE, TOKEN

__all__ = ["start"]  # the fixture, from tests/fixtures/conversations.py
FOOTER = "Reply STOP to opt out."
LATER = 3600.0  # the plan's check-in falls due an hour on: nothing of it is sent meanwhile


class TestSending:
    async def test_a_staff_text_is_sent_once_with_its_history_and_listed_as_staff(
        self, start: Start
    ) -> None:
        """One create at the fake; scheduled → sending → sent → delivered; kind `staff`."""
        c = await start()
        await c.plan(due_in=LATER)
        filed = await staff_text(c.client, "Hi Ana, how is the redness today?")
        assert not filed.held and not filed.in_quiet_hours
        assert await sent_to(c.fake, 1) == [f"Hi Ana, how is the redness today?\n{FOOTER}"]
        await status_callback(c, c.fake.messages[0].sid, "delivered")

        async def delivered() -> bool:
            return bool((await listed_staff(c.client))["status"] == "delivered")

        await until(delivered)
        listed = await listed_staff(c.client)
        assert (listed["id"], listed["kind"], listed["step"]) == (
            filed.message_id,
            "staff",
            "staff",
        )
        assert listed["treatment_id"] == filed.treatment_id
        statuses = [h["status"] for h in listed["history"]]
        assert statuses == ["scheduled", "sending", "sent", "delivered"]
        await asyncio.sleep(0.5)  # a second send would have reached the fake by now
        assert len(c.fake.attempts) == 1

    async def test_the_act_is_audited_without_the_text(self, start: Start) -> None:
        """`staff_text_sent`: the staff member, the clinic's patient id, the message; no text."""
        c = await start()
        await c.plan(due_in=LATER)
        filed = await staff_text(c.client, "Your results are in, call us")
        (row,) = [a for a in await audit_rows(c.client) if a.action == "staff_text_sent"]
        assert (row.actor, row.patient_id, row.clinic_id) == (NURSE_EMAIL, "pt_77", "glow")
        assert json.loads(row.detail or "{}")["message_id"] == filed.message_id
        assert "results" not in (row.detail or "")

    async def test_each_staff_text_takes_the_next_seq_and_only_the_first_has_the_footer(
        self, start: Start
    ) -> None:
        """Two texts: seq 0 and 1 under step `staff`; the footer on the first only."""
        c = await start()
        await c.plan(due_in=LATER)
        await staff_text(c.client, "First")
        await sent_to(c.fake, 1)
        await staff_text(c.client, "Second")
        assert await sent_to(c.fake, 2) == [f"First\n{FOOTER}", "Second"]
        assert [(m.step, m.seq) for m in await staff_rows(c.client)] == [("staff", 0), ("staff", 1)]

    async def test_the_footer_speaks_the_patients_language(self, start: Start) -> None:
        """A Spanish-speaking patient's first message from the clinic ends in Spanish."""
        c = await start()
        await c.plan(due_in=LATER, locale="es")
        await staff_text(c.client, "Hola Ana, ¿qué tal la piel?")
        assert await sent_to(c.fake, 1) == [
            "Hola Ana, ¿qué tal la piel?\nResponda STOP para salir."
        ]

    async def test_a_cancelled_treatment_does_not_stop_a_staff_text(self, start: Start) -> None:
        """Filed under the latest treatment for bookkeeping only: its cancellation spares it."""
        c = await start()
        plan = await c.plan(due_in=LATER)
        cancelled = await c.client.post(
            f"/v1/clinics/glow/treatments/{plan['treatment']['id']}/cancel", headers=bearer(TOKEN)
        )
        assert cancelled.status == 200, await cancelled.text()
        await staff_text(c.client, "Sorry about today")
        assert await sent_to(c.fake, 1) == [f"Sorry about today\n{FOOTER}"]

    async def test_a_failed_staff_text_is_notified_like_any_other(self, start: Start) -> None:
        """Twilio refuses it (21211): `failed` with the code, and `message.failed` naming a
        message of kind `staff`."""
        c = await start()
        await c.plan(due_in=LATER)
        c.fake.behaviours[PHONE] = "error:21211"
        filed = await staff_text(c.client)

        async def failed() -> bool:
            return any(n["type"] == "message.failed" for n in await c.notifications())

        await until(failed)
        note = next(n for n in await c.notifications() if n["type"] == "message.failed")
        message = note["data"]["message"]
        assert (message["id"], message["kind"], message["error_code"]) == (
            filed.message_id,
            "staff",
            21211,
        )
        assert (await listed_staff(c.client))["status"] == "failed"


class TestRefusals:
    async def test_an_opted_out_number_is_refused_and_nothing_is_stored(self, start: Start) -> None:
        """After STOP: StaffTextRefused(opted_out); no message, no audit row, nothing sent."""
        c = await start()
        await c.plan(due_in=LATER)
        await c.text("STOP")
        with pytest.raises(StaffTextRefused) as refused:
            await staff_text(c.client)
        assert refused.value.reason is Refusal.OPTED_OUT and refused.value.status == 409
        assert await staff_rows(c.client) == []
        assert [a for a in await audit_rows(c.client) if a.action == "staff_text_sent"] == []
        assert c.fake.attempts == []

    async def test_a_stop_word_of_other_kinds_does_not_refuse_it(self, start: Start) -> None:
        """`STOP SERUM` stops serum texts, not a person's text."""
        c = await start()
        await c.plan(due_in=LATER)
        await c.text("STOP SERUM")
        await staff_text(c.client, "About your serum")
        assert len(await sent_to(c.fake, 1)) == 1

    async def test_withdrawn_consent_is_refused(self, start: Start) -> None:
        c = await start()
        await c.plan(due_in=LATER, sms_consent=False)
        with pytest.raises(StaffTextRefused) as refused:
            await staff_text(c.client)
        assert refused.value.reason is Refusal.CONSENT_WITHDRAWN

    @pytest.mark.parametrize("body", ["", "   \n ", "a\x00b", "x" * 1600])
    async def test_a_bad_body_is_unprocessable_and_stores_nothing(
        self, start: Start, body: str
    ) -> None:
        """Blank, a NUL, or too long once the footer is added: 422 on field `message`."""
        c = await start()
        await c.plan(due_in=LATER)
        with pytest.raises(Unprocessable) as bad:
            await staff_text(c.client, body)
        assert bad.value.errors[0].field == "message"
        assert await staff_rows(c.client) == []

    async def test_an_unknown_patient_is_not_found(self, start: Start) -> None:
        c = await start()
        with pytest.raises(NotFound):
            await staff_text(c.client, patient="pt_nobody")


def quiet_around_now() -> dict[str, str]:
    """Quiet hours (UTC, as the patients here) from an hour ago to two hours on."""
    now = datetime.now(UTC)
    return {
        "start": (now - timedelta(hours=1)).strftime("%H:%M"),
        "end": (now + timedelta(hours=2)).strftime("%H:%M"),
    }


class TestQuietHours:
    async def test_in_quiet_hours_it_waits_for_their_end(self, start: Start) -> None:
        """Without `send_anyway`: scheduled for the end of the quiet hours, nothing sent."""
        quiet = quiet_around_now()
        c = await start(quiet_hours=quiet)
        await c.plan(due_in=LATER)
        filed = await staff_text(c.client)
        assert filed.held and filed.in_quiet_hours
        assert filed.send_at.strftime("%H:%M") == quiet["end"]
        assert timedelta(hours=1) < filed.send_at - datetime.now(UTC) <= timedelta(hours=2)
        await asyncio.sleep(0.5)
        listed = await listed_staff(c.client)
        assert (listed["status"], listed["kind"]) == ("scheduled", "staff")
        assert c.fake.attempts == []

    async def test_sent_anyway_it_goes_now(self, start: Start) -> None:
        """With `send_anyway`: sent at once, and its history says so."""
        c = await start(quiet_hours=quiet_around_now())
        await c.plan(due_in=LATER)
        filed = await staff_text(c.client, "Urgent: call us", send_anyway=True)
        assert not filed.held and filed.in_quiet_hours
        assert await sent_to(c.fake, 1) == [f"Urgent: call us\n{FOOTER}"]
        history = (await listed_staff(c.client))["history"]
        assert history[0]["detail"] == "staff text; sent anyway in quiet hours"

    async def test_a_held_text_survives_the_treatments_cancellation_and_corrections(
        self, start: Start
    ) -> None:
        """Waiting for the end of quiet hours: a treatment.cancelled and a patient.updated with
        a new time zone leave it scheduled at its time (no plan has it to follow)."""
        c = await start(quiet_hours=quiet_around_now())
        plan = await c.plan(due_in=LATER)
        filed = await staff_text(c.client)
        for event in (
            cancelled_event(plan["treatment"]["id"]),
            patient_updated_event(timezone="Asia/Tokyo"),
        ):
            assert (await post_event(c.client, event)).status in (200, 202)
        listed = await listed_staff(c.client)
        send_at = datetime.fromisoformat(listed["send_at"])
        assert (listed["status"], send_at) == ("scheduled", filed.send_at)
        assert [h["status"] for h in listed["history"]] == ["scheduled"]
