"""Patients' texts through Twilio's inbound webhook (contract §7): any STOP word cancels every
pending message and suppresses later plans until START, at the clinic texted (or everywhere from an
unknown number), and wins over a send about to fall due, while a forged STOP changes nothing; HELP
answers the clinic's text, keywords get an empty answer when replies are off, and other text is
recorded in the history. The world is tests/fixtures/twilio_hooks.py's."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from sqlmodel import Session, select

from service.storage.models import Inbound, OptOut
from service.web.keys import TRANSACTIONS
from tests.fixtures.twilio_hooks import first_message, sent_plan, start
from tests.support import FROM, OTHER_SECRET, PHONE

__all__ = ["start"]  # the fixture, from tests/fixtures/twilio_hooks.py


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

        def _tx2(s: Session) -> set[str]:
            clinics = set(s.exec(select(OptOut.clinic_id)).all())
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

        def _tx3(s: Session) -> Sequence[str]:
            stored = s.exec(select(Inbound.body)).all()
            return stored

        stored = await service.client.app[TRANSACTIONS].read(_tx3)
        assert len(stored) == 1
