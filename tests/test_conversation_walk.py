"""The conversation as a clinic lives it, against the real `aftercare serve` process.

A fake Twilio process takes the texts; a fake clinic endpoint, served by the test, verifies
every notification's signature with standardwebhooks; the patients' and the nurse's texts are
posted as Twilio signs them. What `test_conversations_escalations` and `_replies` check rule
by rule inside the test's process, this checks end to end across the process boundary (the contract
§10, §11, §12).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession
from pytest_aiohttp import AiohttpServer

from tests.fakes.clinic import FakeClinic, serve_clinic
from tests.fakes.twilio import AUTH_TOKEN, message_sid, sign_twilio
from tests.fakes.twilio_process import fake_twilio_process
from tests.fixtures.conversations import CARE, NURSE
from tests.helpers.events import completed_event, encode, signed
from tests.helpers.ports import free_port
from tests.helpers.toml import to_toml
from tests.processes import Service, fake_state, process_config, until_async
from tests.support import FROM, PHONE, SECRET, TOKEN

SPANISH = "+14155550177"


@dataclass
class Walk:
    service: Service
    twilio_url: str
    http: ClientSession
    clinic: FakeClinic

    async def plan(self, *, due_in: timedelta = timedelta(0), **patient: Any) -> str:
        """A treatment whose check-in (2 h after it) is due in `due_in`; its id."""
        completed = datetime.now(UTC) - timedelta(hours=2) + due_in
        event = completed_event(
            treatment={"protocol": "care", "completed_at": completed.isoformat()},
            patient={"timezone": "UTC", **patient},
        )
        raw = encode(event)
        url = f"{self.service.base}/v1/clinics/glow/events"
        async with self.http.post(url, data=raw, headers=signed(raw, secret=SECRET)) as answer:
            assert answer.status == 202, await answer.text()
        treatment_id: str = event["data"]["treatment"]["id"]
        return treatment_id

    async def checked_in(self, **patient: Any) -> str:
        """A treatment whose check-in has been sent and recorded so; its id."""
        treatment_id = await self.plan(**patient)

        async def sent() -> bool:
            return (await self.messages(treatment_id))[0]["status"] in ("sent", "delivered")

        await until_async(sent)
        return treatment_id

    async def messages(self, treatment_id: str) -> list[dict[str, Any]]:
        url = f"{self.service.base}/v1/clinics/glow/treatments/{treatment_id}"
        async with self.http.get(url, headers={"Authorization": f"Bearer {TOKEN}"}) as answer:
            messages: list[dict[str, Any]] = (await answer.json())["messages"]
            return messages

    async def text(self, body: str, sender: str) -> str:
        """A text to the clinic's number as Twilio posts it; the TwiML answer."""
        params = {"MessageSid": message_sid(), "From": sender, "To": FROM, "Body": body}
        url = self.service.base + "/v1/twilio/inbound"
        headers = {"X-Twilio-Signature": sign_twilio(AUTH_TOKEN, url, params)}
        async with self.http.post(url, data=params, headers=headers) as answer:
            assert answer.status == 200
            return await answer.text()

    async def bodies_to(self, number: str) -> list[str]:
        """What the fake Twilio was handed for `number`, in order."""
        state = await fake_state(self.http, self.twilio_url)
        return [m["body"] for m in state["messages"] if m["to"] == number]

    async def texted(self, number: str, count: int) -> list[str]:
        """The bodies for `number` once there are `count` of them."""

        async def arrived() -> bool:
            return len(await self.bodies_to(number)) >= count

        await until_async(arrived)
        return await self.bodies_to(number)

    async def notified(self, type_: str, count: int = 1) -> list[dict[str, Any]]:
        """The verified notifications of `type_` at the clinic once there are `count`."""

        def of_type() -> list[dict[str, Any]]:
            return [r.body for r in self.clinic.received if r.body and r.body["type"] == type_]

        async def arrived() -> bool:
            return len(of_type()) >= count

        await until_async(arrived)
        return of_type()


@pytest.fixture
async def walk(tmp_path: Path, database: str, aiohttp_server: AiohttpServer) -> AsyncIterator[Walk]:
    clinic = FakeClinic(secret=SECRET)
    hook_url = await serve_clinic(aiohttp_server, clinic)
    async with fake_twilio_process() as twilio_url, ClientSession() as http:
        port = free_port()
        data = process_config(port, twilio_url, database, steps=1)
        data["clinics"]["glow"].update(
            on_call_numbers=[NURSE],
            escalation_reminder="3s",
            notifications={"url": hook_url, "secrets": [SECRET]},
        )
        data["sms"]["opt_out_footer"] = {
            "en": "Reply STOP to opt out.",
            "es": "Responda STOP para salir.",
        }
        data["protocols"] = {"care": CARE}
        config = tmp_path / "aftercare.toml"
        config.write_text(to_toml(data))
        service = Service(config, port, tmp_path / "service.log")
        await service.start(http)
        yield Walk(service, twilio_url, http, clinic)
        service.stop()
    clinic.release.set()


async def test_swollen_in_words_is_escalated_notified_reminded_once_and_acked(
    walk: Walk,
) -> None:
    """A reply in words with a red flag is urgent (answered with the fallback, as it matches
    no key), notified signed as
    `checkin.replied` and `checkin.escalated`, the nurse texted (first name and last four
    digits only), texted once more after `escalation_reminder`, and ACK closes it."""
    treatment_id = await walk.checked_in()
    answer = await walk.text("my cheek is really SWOLLEN", PHONE)
    assert "Thank you, Glow will read your message." in answer
    [alert] = await walk.texted(NURSE, 1)
    assert "Ana" in alert and "0123" in alert and PHONE[:-4] not in alert
    [replied] = await walk.notified("checkin.replied")
    assert replied["data"]["reply"]["level"] == "urgent"
    assert replied["data"]["reply"]["text"] == "my cheek is really SWOLLEN"
    [escalated] = await walk.notified("checkin.escalated")
    assert escalated["data"]["escalation"]["state"] == "open"
    first, reminder = await walk.texted(NURSE, 2)  # nobody acknowledged within 3 s
    assert first == alert and "Ana" in reminder
    assert "Acknowledged: Ana" in await walk.text("ACK", NURSE)
    url = f"{walk.service.base}/v1/clinics/glow/escalations?state=acknowledged"
    async with walk.http.get(url, headers={"Authorization": f"Bearer {TOKEN}"}) as listed:
        [closed] = (await listed.json())["escalations"]
    assert closed["treatment_id"] == treatment_id
    assert len(await walk.bodies_to(NURSE)) == 2  # the reminder went once
    assert all(r.verified for r in walk.clinic.received)


async def test_free_text_a_stray_reply_stop_serum_and_the_spanish_footer(walk: Walk) -> None:
    """A Spanish patient's first text ends in the Spanish footer; their free-text reply is
    answered with the Spanish fallback and notified; a reply from a number with no check-in
    sent is `reply.received`; `STOP SERUM` cancels only the serum message, and a later plan
    suppresses it."""
    treatment_id = await walk.checked_in(id="pt_es", phone=SPANISH, locale="es")
    [checkin] = await walk.bodies_to(SPANISH)
    assert checkin.startswith("Hola Ana") and checkin.endswith("Responda STOP para salir.")
    fallback = await walk.text("gracias, todo bien", SPANISH)
    assert "Gracias, Glow leerá su mensaje." in fallback
    [replied] = await walk.notified("checkin.replied")
    assert replied["data"]["reply"]["level"] == "free_text"
    await walk.plan(due_in=timedelta(hours=1))  # Ana (PHONE): no check-in sent yet
    assert "<Message>" not in await walk.text("is my appointment still on?", PHONE)
    [stray] = await walk.notified("reply.received")
    assert stray["data"]["reply"]["text"] == "is my appointment still on?"
    assert stray["data"]["phone"].endswith("0123") and PHONE not in str(stray)
    await walk.text("STOP SERUM", SPANISH)

    async def serum_cancelled() -> bool:
        kinds: dict[str, str] = {m["kind"]: m["status"] for m in await walk.messages(treatment_id)}
        return kinds["serum"] == "cancelled"

    await until_async(serum_cancelled)
    kinds = {m["kind"]: m["status"] for m in await walk.messages(treatment_id)}
    assert kinds.pop("checkin") in ("sent", "delivered")
    assert kinds == {"serum": "cancelled", "aftercare": "scheduled"}
    later = await walk.plan(due_in=timedelta(hours=1), id="pt_es", phone=SPANISH, locale="es")
    kinds = {m["kind"]: m["status"] for m in await walk.messages(later)}
    assert kinds == {"checkin": "scheduled", "serum": "suppressed", "aftercare": "scheduled"}
    assert all(r.verified for r in walk.clinic.received)
