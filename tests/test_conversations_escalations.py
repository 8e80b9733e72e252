"""The conversation's urgent replies (contract §10, §12), from outside: a "3" or a red flag in words
is answered, escalated, notified to the clinic system signed, and texted to the on-call nurse once,
not again while open; an ACK from the on-call number closes the oldest; the reminder fires once; the
alert is kept with the treatment, masked, and sent though the patient said STOP; and the escalations
API acknowledges, refuses with problems, and pages newest first. The world is
tests/fixtures/conversations.py's."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pytest_aiohttp import AiohttpServer

from service.conversations import escalations
from service.web.keys import SETTINGS, TRANSACTIONS
from tests.fakes.clinic import FakeClinic, serve_clinic
from tests.fixtures.conversations import NURSE, Start, alerted, care_day, start
from tests.helpers.client import bearer
from tests.processes import until_async as until
from tests.support import OTHER_SECRET, OTHER_TOKEN, PHONE, TOKEN

__all__ = ["start"]  # the fixture, from tests/fixtures/conversations.py


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
        day = care_day(plan)  # 1, not 0, when the check-in's 2 h straddle midnight (UTC)
        assert f"care day {day}:" in alert and "URGENT" in alert and '"3."' in alert
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

    async def test_ack_from_the_on_call_number_closes_the_one_texted(self, start: Start) -> None:
        """ACK from an on-call number acknowledges the escalation last texted to it and says
        which; ACK again says it was acknowledged and nothing is open."""
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
