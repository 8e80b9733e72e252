"""The conversation (SPEC §10, §12), from outside: the real app over HTTP, the real twilio
client sending to a fake Twilio, the patient's and the nurse's texts posted as Twilio signs
them, the notifications read from the outbox the deliverer sends from."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient, AiohttpServer
from sqlmodel import Session, col, select

from service.conversations import escalations
from service.storage.outbox import Notification
from service.web.app import create_app
from service.web.keys import SETTINGS, TRANSACTIONS
from tests.fakes.clinic import FakeClinic, serve_clinic
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, serve, sign_twilio
from tests.helpers.client import bearer
from tests.helpers.events import completed_event, encode, signed
from tests.helpers.ports import free_port
from tests.processes import until_async as until
from tests.support import (
    FROM,
    OTHER_SECRET,
    OTHER_TOKEN,
    PHONE,
    SECRET,
    TOKEN,
    config_data,
    glow_in_utc,
    make_settings,
)

NURSE = "+14155550142"
ANSWERS = {
    "1": {"level": "ok", "answer": {"en": "Glad to hear it.", "es": "Nos alegra."}},
    "2": {"level": "watch", "answer": {"en": "Redness is normal.", "es": "Es normal."}},
    "3": {
        "level": "urgent",
        "answer": {
            "en": "We have alerted {clinic_name}; someone will call you.",
            "es": "Hemos avisado a {clinic_name}; le llamaremos.",
        },
    },
}
CARE = {
    "title": "Care",
    "default_serum": "hyaluronic acid serum",
    "steps": [
        {
            "key": "check-in",
            "kind": "checkin",
            "after": "2h",
            "expires_after": "1h",
            "text": {
                "en": "Hi {first_name}, how is your skin? Reply 1, 2 or 3.",
                "es": "Hola {first_name}, ¿cómo está su piel? Responda 1, 2 o 3.",
            },
            "reply_window": "48h",
            "fallback_answer": {
                "en": "Thank you, {clinic_name} will read your message.",
                "es": "Gracias, {clinic_name} leerá su mensaje.",
            },
            "red_flags": {"en": ["swollen", "pus"], "es": ["hinchazón"]},
            "replies": ANSWERS,
        },
        {"key": "serum", "kind": "serum", "after": "1d", "text": "Your {serum}, {first_name}."},
        {"key": "spf", "kind": "aftercare", "after": "2d", "text": "SPF today, {first_name}."},
    ],
}


@dataclass
class Conversation:
    client: TestClient[Any, Any]
    fake: FakeTwilio
    base: str

    async def text(self, body: str, *, sender: str = PHONE, to: str = FROM) -> str:
        """A text to the clinic's number, as Twilio posts it; the TwiML answer."""
        params = {"MessageSid": "SM" + "2" * 32, "From": sender, "To": to, "Body": body}
        path = "/v1/twilio/inbound"
        signature = sign_twilio(AUTH_TOKEN, self.base + path, params)
        response = await self.client.post(
            path, data=params, headers={"X-Twilio-Signature": signature}
        )
        assert response.status == 200
        return str(await response.text())

    async def plan(self, *, due_in: float = 0.0, **patient: Any) -> dict[str, Any]:
        """A treatment whose check-in (2h after it) is due in `due_in` seconds."""
        completed = datetime.now(UTC) - timedelta(hours=2) + timedelta(seconds=due_in)
        body = completed_event(
            treatment={"protocol": "care", "completed_at": completed.isoformat()},
            patient={"timezone": "UTC", **patient},
        )
        raw = encode(body)
        response = await self.client.post(
            "/v1/clinics/glow/events", data=raw, headers=signed(raw, secret=SECRET)
        )
        assert response.status == 202, await response.text()
        plan: dict[str, Any] = await response.json()
        return plan

    async def checked_in(self, **patient: Any) -> dict[str, Any]:
        """A plan whose check-in has been sent (and recorded as sent)."""
        plan = await self.plan(**patient)

        async def sent() -> bool:
            return (await self.messages(plan))[0]["status"] == "sent"

        await until(sent)
        return plan

    async def messages(self, plan: dict[str, Any]) -> list[dict[str, Any]]:
        response = await self.client.get(
            f"/v1/clinics/glow/treatments/{plan['treatment']['id']}", headers=bearer(TOKEN)
        )
        messages: list[dict[str, Any]] = (await response.json())["messages"]
        return messages

    def to(self, number: str) -> list[str]:
        """The bodies the fake Twilio was handed for `number`."""
        return [m.body for m in self.fake.messages if m.to == number]

    async def notifications(self) -> list[dict[str, Any]]:
        def bodies(s: Session) -> list[str]:
            query = select(Notification).order_by(col(Notification.created_at))
            return [n.body for n in s.exec(query).all()]

        return [json.loads(b) for b in await self.client.app[TRANSACTIONS].read(bodies)]

    async def escalations(self, **query: str) -> dict[str, Any]:
        response = await self.client.get(
            "/v1/clinics/glow/escalations", params=query, headers=bearer(TOKEN)
        )
        assert response.status == 200, await response.text()
        page: dict[str, Any] = await response.json()
        return page


Start = Callable[..., Awaitable[Conversation]]


@pytest.fixture
def start(database: str, aiohttp_server: AiohttpServer, aiohttp_client: AiohttpClient) -> Start:
    async def run(hook_url: str = "http://127.0.0.1:9/hooks", **clinic: Any) -> Conversation:
        fake = FakeTwilio(callbacks=False)
        twilio_url = await serve(aiohttp_server, fake)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        hook = {"url": hook_url, "secrets": [OTHER_SECRET]}
        glow = glow_in_utc(on_call_numbers=[NURSE], notifications=hook, **clinic)
        other = config_data(database)["clinics"]["other"]
        settings = make_settings(
            database,
            server={"public_base_url": base},
            sms={
                "backend": "twilio",
                "opt_out_footer": {
                    "en": "Reply STOP to opt out.",
                    "es": "Responda STOP para salir.",
                },
            },
            twilio={
                "account_sid": ACCOUNT_SID,
                "auth_token": AUTH_TOKEN,
                "api_base_url": twilio_url,
                "request_timeout": "2s",
            },
            clinics={"glow": glow, "other": other},
            protocols={"care": CARE},
        )
        server = await aiohttp_server(create_app(settings), port=port)
        return Conversation(await aiohttp_client(server), fake, base)

    return run


async def alerted(c: Conversation, count: int) -> None:
    async def arrived() -> bool:
        return len(c.to(NURSE)) >= count

    await until(arrived)


class TestUrgentReply:
    async def test_a_3_is_answered_escalated_notified_and_the_nurse_texted_once(
        self, start: Start
    ) -> None:
        """ "3" answers the urgent text, keeps `replied "3" (urgent)`, records checkin.replied
        and checkin.escalated, and texts the on-call number once: first name, last four."""
        c = await start()
        plan = await c.checked_in()
        answer = await c.text(" 3. ")
        assert "We have alerted Glow; someone will call you." in answer
        checkin = (await c.messages(plan))[0]
        assert checkin["history"][-1]["detail"] == 'replied "3" (urgent)'
        await alerted(c, 1)
        [alert] = c.to(NURSE)
        assert "Ana" in alert and "0123" in alert and plan["treatment"]["id"] in alert
        assert "care day 0" in alert and "URGENT" in alert and '"3."' in alert
        assert PHONE[:-4] not in alert and "4155550" not in alert  # only the last four
        assert "STOP" not in alert  # no opt-out footer on an alert
        types = [n["type"] for n in await c.notifications()]
        assert sorted(types) == ["checkin.escalated", "checkin.replied"]  # in one transaction
        escalated = next(
            n["data"] for n in await c.notifications() if n["type"] == "checkin.escalated"
        )
        assert escalated["reply"]["level"] == "urgent"
        assert escalated["escalation"]["state"] == "open"
        assert escalated["message"]["to"].endswith("0123") and PHONE not in json.dumps(escalated)
        [open_one] = (await c.escalations(state="open"))["escalations"]
        assert open_one["id"] == escalated["escalation"]["id"]

    async def test_the_clinic_system_receives_both_notifications_signed(
        self, start: Start, aiohttp_server: AiohttpServer
    ) -> None:
        """Delivered by the outbox's deliverer to the clinic's endpoint, which verifies each
        with standardwebhooks: checkin.replied, then checkin.escalated."""
        clinic = FakeClinic(secret=OTHER_SECRET)
        c = await start(hook_url=await serve_clinic(aiohttp_server, clinic))
        await c.checked_in()
        await c.text("3")

        async def arrived() -> bool:
            return len(clinic.received) >= 2

        await until(arrived)
        assert all(r.verified and r.answered == 200 for r in clinic.received)
        bodies = [r.body for r in clinic.received if r.body is not None]
        assert sorted(b["type"] for b in bodies) == ["checkin.escalated", "checkin.replied"]
        [escalated] = [b for b in bodies if b["type"] == "checkin.escalated"]
        assert escalated["data"]["escalation"]["level"] == "urgent"

    async def test_ack_from_the_on_call_number_closes_the_oldest(self, start: Start) -> None:
        """ACK from an on-call number acknowledges the clinic's oldest open escalation and
        says which."""
        c = await start()
        await c.checked_in()
        await c.text("3")
        answer = await c.text("ack", sender=NURSE)
        assert "Acknowledged: Ana (phone ending 0123)" in answer and "Still open: 0" in answer
        [done] = (await c.escalations(state="acknowledged"))["escalations"]
        assert done["acknowledged_by"].endswith("0142")
        assert (await c.escalations(state="open"))["escalations"] == []
        assert "No open escalation" in await c.text("ACK", sender=NURSE)

    async def test_a_second_3_while_open_pages_nobody_again(self, start: Start) -> None:
        """While the check-in's escalation is open, another urgent reply is answered, kept and
        notified, but opens no second escalation and texts the nurse no second time."""
        c = await start()
        plan = await c.checked_in()
        await c.text("3")
        await alerted(c, 1)
        assert "We have alerted Glow" in await c.text("3!!")
        assert len((await c.escalations())["escalations"]) == 1
        types = [n["type"] for n in await c.notifications()]
        assert sorted(types) == ["checkin.escalated", "checkin.replied", "checkin.replied"]
        checkin = next(m for m in await c.messages(plan) if m["kind"] == "checkin")
        assert checkin["history"][-1]["detail"] == 'replied "3" (urgent)'
        alerts = [m for m in await c.messages(plan) if m["kind"] == "alert"]
        assert len(alerts) == 1

    async def test_a_red_flag_in_words_is_escalated_like_a_3(self, start: Start) -> None:
        """ "my cheek is really SWOLLEN" is urgent: escalated and the nurse alerted."""
        c = await start()
        await c.checked_in()
        answer = await c.text("my cheek is really SWOLLEN")
        assert "Glow will read your message" in answer  # no key: the fallback answer
        await alerted(c, 1)
        assert "my cheek is really SWOLLEN" in c.to(NURSE)[0]
        [esc] = (await c.escalations())["escalations"]
        assert esc["level"] == "urgent"

    async def test_the_reminder_fires_once_when_nobody_acknowledges(self, start: Start) -> None:
        """Still open after escalation_reminder: the on-call numbers are alerted once more,
        and only once, however often the job runs (on however many replicas)."""
        c = await start(escalation_reminder="1s")
        await c.checked_in()
        await c.text("3")
        await alerted(c, 2)
        assert c.to(NURSE)[1].startswith("Glow REMINDER, still open")
        settings, transactions = c.client.app[SETTINGS], c.client.app[TRANSACTIONS]
        later = datetime.now(UTC) + timedelta(hours=1)
        again = await transactions.write(lambda s: escalations.remind(s, settings, now=later))
        assert again == []
        [esc] = (await c.escalations())["escalations"]
        assert esc["reminded_at"] is not None and esc["state"] == "open"

    async def test_the_alert_is_kept_with_the_treatment_masked(self, start: Start) -> None:
        """The read API shows the alert under the patient's treatment: kind alert, the
        on-call number masked, its history."""
        c = await start()
        plan = await c.checked_in()
        await c.text("3")
        await alerted(c, 1)

        async def recorded() -> bool:
            kinds = {m["kind"]: m for m in await c.messages(plan)}
            return kinds.get("alert", {}).get("status") == "sent"

        await until(recorded)
        alert = {m["kind"]: m for m in await c.messages(plan)}["alert"]
        assert alert["to"].endswith("0142") and NURSE not in json.dumps(alert)
        assert [h["status"] for h in alert["history"]] == ["scheduled", "sending", "sent"]

    async def test_the_alert_goes_though_the_patient_said_stop(self, start: Start) -> None:
        """The patient's opt-out does not stop the alert to the clinic's on-call number."""
        c = await start()
        await c.checked_in()
        await c.text("STOP")
        await c.text("3")
        await alerted(c, 1)


class TestOtherReplies:
    async def test_free_text_is_answered_with_the_fallback_and_notified(self, start: Start) -> None:
        """A reply matching no key and no red flag: the fallback, checkin.replied
        (free_text), and no escalation (not in escalate_levels)."""
        c = await start()
        plan = await c.checked_in()
        answer = await c.text("a little itchy, is that normal?")
        assert "Thank you, Glow will read your message." in answer
        [note] = await c.notifications()
        assert note["type"] == "checkin.replied"
        assert note["data"]["reply"]["level"] == "free_text"
        assert note["data"]["message"]["id"] == plan["messages"][0]["id"]
        assert (await c.escalations())["escalations"] == []

    async def test_a_spanish_patient_is_answered_in_spanish(self, start: Start) -> None:
        """The answer is in the patient's locale."""
        c = await start()
        await c.checked_in(locale="es")
        assert "Hemos avisado a Glow" in await c.text("3")

    async def test_a_watch_level_escalates_when_the_clinic_says_so(self, start: Start) -> None:
        """escalate_levels may include watch."""
        c = await start(escalate_levels=["urgent", "watch"])
        await c.checked_in()
        await c.text("2")
        [esc] = (await c.escalations())["escalations"]
        assert esc["level"] == "watch"

    async def test_a_reply_outside_every_window_is_reply_received(self, start: Start) -> None:
        """No check-in was sent to the number: the text is notified as reply.received."""
        c = await start()
        plan = await c.plan(due_in=3600)
        assert (await c.text("hello?")).endswith("<Response/>")
        [note] = await c.notifications()
        assert note["type"] == "reply.received"
        assert note["data"]["patient_ids"] == ["pt_77"]
        assert note["data"]["phone"].endswith("0123") and PHONE not in json.dumps(note)
        assert {m["status"] for m in await c.messages(plan)} == {"scheduled"}


class TestStopWord:
    async def test_stop_serum_cancels_only_serum_and_later_plans_suppress_it(
        self, start: Start
    ) -> None:
        """STOP SERUM: serum messages cancelled (`opted out of serum`), others untouched;
        a later plan records serum suppressed; the answer says STOP alone stops all."""
        c = await start()
        plan = await c.plan(due_in=3600)
        answer = await c.text("Stop serum")
        assert "no more serum texts" in answer and "Reply STOP to stop all texts" in answer
        by_kind = {m["kind"]: m for m in await c.messages(plan)}
        assert by_kind["serum"]["status"] == "cancelled"
        assert by_kind["serum"]["reason"] == "opted out of serum"
        assert by_kind["checkin"]["status"] == by_kind["aftercare"]["status"] == "scheduled"
        later = {m["kind"]: m for m in (await c.plan(due_in=3600))["messages"]}
        assert (later["serum"]["status"], later["serum"]["reason"]) == (
            "suppressed",
            "opted out of serum",
        )
        assert later["checkin"]["status"] == "scheduled"
        [note] = [n for n in await c.notifications() if n["type"] == "patient.opted_out"]
        assert note["data"]["scope"] == ["serum"]

    async def test_start_serum_resumes_later_plans(self, start: Start) -> None:
        """START SERUM lifts it: the next plan schedules serum again."""
        c = await start()
        await c.text("STOP SERUM")
        assert "serum texts from Glow again" in await c.text("start serum")
        later = {m["kind"]: m for m in (await c.plan(due_in=3600))["messages"]}
        assert later["serum"]["status"] == "scheduled"

    async def test_a_word_that_is_no_stop_word_is_plain_text(self, start: Start) -> None:
        """ "STOP PLEASE" is not a keyword: nothing is opted out."""
        c = await start()
        plan = await c.plan(due_in=3600)
        await c.text("stop please")
        assert {m["status"] for m in await c.messages(plan)} == {"scheduled"}


class TestFooter:
    async def test_a_spanish_patients_first_message_ends_in_the_spanish_footer(
        self, start: Start
    ) -> None:
        """opt_out_footer per locale: the patient's locale picks it."""
        c = await start()
        await c.checked_in(locale="es")
        [first] = c.to(PHONE)
        assert first.endswith("\nResponda STOP para salir.")


class TestEscalationsApi:
    async def test_acknowledge_through_the_api(self, start: Start) -> None:
        """POST …/acknowledge with {"by"}: acknowledged, by whom; again changes nothing."""
        c = await start()
        await c.checked_in()
        await c.text("3")
        [esc] = (await c.escalations())["escalations"]
        path = f"/v1/clinics/glow/escalations/{esc['id']}/acknowledge"
        response = await c.client.post(path, json={"by": "nurse Kim"}, headers=bearer(TOKEN))
        assert response.status == 200
        done = await response.json()
        assert (done["state"], done["acknowledged_by"]) == ("acknowledged", "nurse Kim")
        again = await c.client.post(path, json={"by": "someone"}, headers=bearer(TOKEN))
        assert (await again.json())["acknowledged_by"] == "nurse Kim"

    @pytest.mark.parametrize(
        ("headers", "body", "status"),
        [
            ({}, {"by": "x"}, 401),
            (bearer(OTHER_TOKEN), {"by": "x"}, 403),
            (bearer(TOKEN), {"by": ""}, 422),
            (bearer(TOKEN), ["by"], 422),
        ],
    )
    async def test_refusals_are_problems_and_change_nothing(
        self, start: Start, headers: dict[str, str], body: Any, status: int
    ) -> None:
        c = await start()
        await c.checked_in()
        await c.text("3")
        [esc] = (await c.escalations())["escalations"]
        path = f"/v1/clinics/glow/escalations/{esc['id']}/acknowledge"
        response = await c.client.post(path, json=body, headers=headers)
        assert response.status == status
        assert response.content_type == "application/problem+json"
        assert (await c.escalations())["escalations"][0]["state"] == "open"

    async def test_unknown_ids_and_states(self, start: Start) -> None:
        c = await start()
        path = "/v1/clinics/glow/escalations/esc_nope/acknowledge"
        response = await c.client.post(path, json={"by": "x"}, headers=bearer(TOKEN))
        assert response.status == 404
        bad = await c.client.get(
            "/v1/clinics/glow/escalations", params={"state": "closed"}, headers=bearer(TOKEN)
        )
        assert bad.status == 422

    async def test_pages_newest_first(self, start: Start) -> None:
        """limit and cursor page the list, newest first, without repeats."""
        c = await start()
        patients = [("pt_1", "+14155550124"), ("pt_2", "+14155550125"), ("pt_3", "+14155550126")]
        for patient_id, phone in patients:
            await c.checked_in(id=patient_id, phone=phone)
            await c.text("3", sender=phone)
        first = await c.escalations(limit="2")
        assert len(first["escalations"]) == 2 and first["next_cursor"]
        rest = await c.escalations(limit="2", cursor=first["next_cursor"])
        ids = [e["id"] for e in first["escalations"] + rest["escalations"]]
        assert len(set(ids)) == 3 and rest["next_cursor"] is None
        opened = [e["opened_at"] for e in first["escalations"] + rest["escalations"]]
        assert opened == sorted(opened, reverse=True)
