"""Twilio's webhooks (SPEC §7): delivery statuses and patients' STOP / START / HELP.

The real app sends through the real twilio client to a fake Twilio; the test plays Twilio's
callbacks, signed (or forged) as Twilio signs them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient, AiohttpServer
from sqlmodel import Session

from service.storage.models import Inbound, Message, OptOut
from service.web.app import create_app
from service.web.keys import TRANSACTIONS
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, serve, sign_twilio
from tests.helpers.events import completed_event, encode, signed
from tests.helpers.ports import free_port
from tests.processes import until_async as until
from tests.support import FROM, OTHER_SECRET, PHONE, SECRET, TOKEN, config_data, make_settings

OTHER_FROM = "+4915112345678"


@dataclass
class Service:
    client: TestClient[Any, Any]
    fake: FakeTwilio
    base: str

    async def twilio_post(
        self, path: str, params: dict[str, str], *, signature: str | None = None
    ) -> Any:
        """POST a form as Twilio would, signed for public_base_url + path unless told."""
        sig = (
            signature
            if signature is not None
            else sign_twilio(AUTH_TOKEN, self.base + path, params)
        )
        return await self.client.post(path, data=params, headers={"X-Twilio-Signature": sig})

    async def status(self, sid: str, status: str, **extra: str) -> Any:
        params = {"MessageSid": sid, "MessageStatus": status, "AccountSid": ACCOUNT_SID, **extra}
        return await self.twilio_post("/v1/twilio/status", params)

    async def text(self, body: str, *, to: str = FROM, sender: str = PHONE) -> Any:
        params = {
            "MessageSid": "SM" + "1" * 32,
            "From": sender,
            "To": to,
            "Body": body,
            "AccountSid": ACCOUNT_SID,
        }
        return await self.twilio_post("/v1/twilio/inbound", params)

    async def plan(
        self,
        *,
        clinic: str = "glow",
        due_in: float = 3600.0,
        secret: str = SECRET,
        **overrides: Any,
    ) -> dict[str, Any]:
        """Post a treatment whose first step ("tonight", after 2h) is due in `due_in` s."""
        completed = datetime.now(UTC) - timedelta(hours=2) + timedelta(seconds=due_in)
        overrides.setdefault("treatment", {})["completed_at"] = completed.isoformat()
        overrides.setdefault("patient", {}).setdefault("timezone", "UTC")
        raw = encode(completed_event(**overrides))
        response = await self.client.post(
            f"/v1/clinics/{clinic}/events", data=raw, headers=signed(raw, secret=secret)
        )
        assert response.status == 202, await response.text()
        plan: dict[str, Any] = await response.json()
        return plan

    async def messages(
        self, clinic: str = "glow", treatment: str | None = None
    ) -> list[dict[str, Any]]:
        def _tx(s: Session) -> Any:
            query = sa.select(Message).where(Message.clinic_id == clinic)
            rows = s.exec(query).all()
            return rows

        rows = await self.client.app[TRANSACTIONS].read(_tx)
        return [
            r[0].model_dump() for r in rows if treatment is None or r[0].treatment_id == treatment
        ]

    async def read(self, treatment_id: str) -> list[dict[str, Any]]:
        response = await self.client.get(
            f"/v1/clinics/glow/treatments/{treatment_id}",
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        messages: list[dict[str, Any]] = (await response.json())["messages"]
        return messages


@pytest.fixture
def start(
    database: str, aiohttp_server: AiohttpServer, aiohttp_client: AiohttpClient
) -> Callable[..., Awaitable[Service]]:
    async def run(*, reply_to_keywords: bool = True, callbacks: bool = False) -> Service:
        fake = FakeTwilio(callbacks=callbacks, callback_delay=0.05)
        twilio_url = await serve(aiohttp_server, fake)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        clinics = config_data(database)["clinics"]
        for clinic in clinics.values():
            clinic["quiet_hours"] = {"start": "00:00", "end": "00:00"}
        settings = make_settings(
            database,
            server={"public_base_url": base},
            sms={"backend": "twilio", "reply_to_keywords": reply_to_keywords},
            twilio={
                "account_sid": ACCOUNT_SID,
                "auth_token": AUTH_TOKEN,
                "api_base_url": twilio_url,
                "request_timeout": "3s",
            },
            clinics=clinics,
        )
        server = await aiohttp_server(create_app(settings), port=port)
        return Service(await aiohttp_client(server), fake, base)

    return run


async def sent_plan(service: Service) -> tuple[dict[str, Any], str]:
    """A plan whose first message has been sent; the plan and that message's sid."""
    plan = await service.plan(due_in=0)

    async def arrived() -> bool:
        return len(service.fake.messages) == 1

    await until(arrived)

    async def recorded() -> bool:
        first = (await service.read(plan["treatment"]["id"]))[0]
        return bool(first["status"] == "sent")

    await until(recorded)
    return plan, service.fake.messages[0].sid


async def first_message(service: Service, plan: dict[str, Any]) -> dict[str, Any]:
    return (await service.read(plan["treatment"]["id"]))[0]


class TestStatusCallbacks:
    async def test_delivered_moves_the_message_forward(self, start: Any) -> None:
        """A signed `delivered` callback marks the message delivered, with history."""
        service = await start()
        plan, sid = await sent_plan(service)
        assert (await service.status(sid, "sent")).status == 200
        assert (await service.status(sid, "delivered")).status == 200
        first = await first_message(service, plan)
        assert first["status"] == "delivered"
        assert [h["status"] for h in first["history"]] == [
            "scheduled",
            "sending",
            "sent",
            "delivered",
        ]

    async def test_late_and_repeated_callbacks_change_nothing(self, start: Any) -> None:
        """Out of order and duplicates: a late `sent` never overwrites `delivered`."""
        service = await start()
        plan, sid = await sent_plan(service)
        for status in ("delivered", "delivered", "sent", "queued", "delivered"):
            assert (await service.status(sid, status)).status == 200
        first = await first_message(service, plan)
        assert first["status"] == "delivered"
        assert [h["status"] for h in first["history"]].count("delivered") == 1

    async def test_undelivered_keeps_the_error_code(self, start: Any) -> None:
        """`undelivered` with ErrorCode 30003 is recorded with the code."""
        service = await start()
        plan, sid = await sent_plan(service)
        await service.status(sid, "undelivered", ErrorCode="30003")
        first = await first_message(service, plan)
        assert (first["status"], first["error_code"]) == ("undelivered", 30003)
        assert first["history"][-1]["error_code"] == 30003

    async def test_unknown_sid_is_200_and_changes_nothing(self, start: Any) -> None:
        """A callback for a sid the service never sent answers 200."""
        service = await start()
        plan, _ = await sent_plan(service)
        assert (await service.status("SM" + "f" * 32, "delivered")).status == 200
        assert (await first_message(service, plan))["status"] == "sent"

    async def test_callback_before_the_create_answer_is_applied(self, start: Any) -> None:
        """A fast carrier's callbacks that beat Twilio's create answer are not lost."""
        service = await start(callbacks=True)
        service.fake.behaviours[PHONE] = "lateanswer:1"
        plan = await service.plan(due_in=0)

        async def delivered() -> bool:
            return bool((await first_message(service, plan))["status"] == "delivered")

        await until(delivered)
        assert [c[1] for c in service.fake.callbacks_sent] == ["sending", "sent", "delivered"]

    @pytest.mark.parametrize("signature", ["", "forged", None])
    async def test_forged_callback_is_403_and_changes_nothing(
        self, start: Any, signature: str | None
    ) -> None:
        """A missing, wrong, or other-URL signature is refused and changes nothing."""
        service = await start()
        plan, sid = await sent_plan(service)
        params = {"MessageSid": sid, "MessageStatus": "undelivered", "AccountSid": ACCOUNT_SID}
        if signature is None:  # signed, but for a URL the service is not reached at
            signature = sign_twilio(AUTH_TOKEN, "http://evil.example/v1/twilio/status", params)
        response = await service.twilio_post("/v1/twilio/status", params, signature=signature)
        assert response.status == 403
        assert response.content_type == "application/problem+json"
        assert (await first_message(service, plan))["status"] == "sent"


class TestStop:
    @pytest.mark.parametrize(
        "word",
        [
            "STOP",
            "stop",
            "  Stop.  ",
            "opt out",
            "OptOut",
            "STOPALL",
            "unsubscribe!",
            "Cancel",
            "end",
            "QUIT",
            "revoke",
        ],
    )
    async def test_stop_cancels_every_pending_message(self, start: Any, word: str) -> None:
        """Any STOP word opts the number out and cancels its pending messages there."""
        service = await start()
        plan = await service.plan()
        response = await service.text(word)
        assert response.status == 200 and "<Response>" in await response.text()
        statuses = {m["status"] for m in await service.read(plan["treatment"]["id"])}
        assert statuses == {"cancelled"}

    async def test_later_events_are_suppressed_until_start(self, start: Any) -> None:
        """After STOP new plans are suppressed; after START they are scheduled again."""
        service = await start()
        first = await service.plan()
        await service.text("STOP")
        stopped = await service.plan()
        assert {m["status"] for m in stopped["messages"]} == {"suppressed"}
        answer = await (await service.text("start")).text()
        assert "STOP" in answer  # the confirmation says how to opt out again
        again = await service.plan()
        assert {m["status"] for m in again["messages"]} == {"scheduled"}
        cancelled = {m["status"] for m in await service.read(first["treatment"]["id"])}
        assert cancelled == {"cancelled"}  # cancelled messages stay cancelled

    async def test_stop_is_scoped_to_the_clinic_texted(self, start: Any) -> None:
        """A STOP to one clinic's number leaves another clinic's messages alone."""
        service = await start()
        await service.plan()
        await service.plan(clinic="other", secret=OTHER_SECRET, patient={"locale": "de"})
        await service.text("STOP", to=FROM)
        assert {m["status"] for m in await service.messages("glow")} == {"cancelled"}
        assert {m["status"] for m in await service.messages("other")} == {"scheduled"}

    async def test_stop_to_an_unknown_number_opts_out_everywhere(self, start: Any) -> None:
        """When `To` is no clinic's number, the STOP applies to every clinic."""
        service = await start()
        await service.text("STOP", to="+14155559999")

        def _tx2(s: Session) -> Any:
            clinics = {r[0] for r in s.exec(sa.select(OptOut.clinic_id)).all()}
            return clinics

        clinics = await service.client.app[TRANSACTIONS].read(_tx2)
        assert clinics == {"glow", "other"}

    async def test_stop_just_before_a_due_send_wins(self, start: Any) -> None:
        """A STOP arriving a moment before a message falls due means it is not sent."""
        service = await start()
        plan = await service.plan(due_in=1.0)
        await service.text("STOP")
        await asyncio.sleep(1.5)
        assert service.fake.attempts == []
        assert (await first_message(service, plan))["status"] == "cancelled"

    async def test_forged_stop_changes_nothing(self, start: Any) -> None:
        """An inbound message without a valid signature is refused and opts nobody out."""
        service = await start()
        plan = await service.plan()
        params = {"From": PHONE, "To": FROM, "Body": "STOP"}
        response = await service.twilio_post("/v1/twilio/inbound", params, signature="nope")
        assert response.status == 403
        assert {m["status"] for m in await service.read(plan["treatment"]["id"])} == {"scheduled"}


class TestHelpAndReplies:
    @pytest.mark.parametrize("word", ["HELP", "help", " Info? "])
    async def test_help_answers_the_clinics_text(self, start: Any, word: str) -> None:
        """HELP and INFO answer TwiML carrying the clinic's help_text."""
        service = await start()
        response = await service.text(word)
        assert response.content_type == "application/xml"
        assert "<Message>Glow help: call (415) 555-0100.</Message>" in await response.text()

    async def test_keywords_get_an_empty_response_when_replies_are_off(self, start: Any) -> None:
        """With reply_to_keywords = false the answer is an empty <Response/>."""
        service = await start(reply_to_keywords=False)
        text = await (await service.text("HELP")).text()
        assert text.endswith("<Response/>")

    async def test_other_text_is_recorded_in_the_history(self, start: Any) -> None:
        """A free-text reply is kept and shown in the history of the last message sent."""
        service = await start()
        plan, _ = await sent_plan(service)
        response = await service.text("Thanks! A bit red, is that ok? call me +14155550199")
        assert (await response.text()).endswith("<Response/>")
        last = (await first_message(service, plan))["history"][-1]
        assert last["detail"].startswith("patient replied: Thanks! A bit red")
        assert "+14155550199" not in last["detail"]

        def _tx3(s: Session) -> Any:
            stored = s.exec(sa.select(Inbound.body)).all()
            return stored

        stored = await service.client.app[TRANSACTIONS].read(_tx3)
        assert len(stored) == 1
