"""A `From` of any length or shape is kept or refused cleanly, never a 500 (contract §14): a channel
address (`whatsapp:+14155550123`, 21 characters) is the number behind it, so its STOP opts that
number out; 40 or 200 characters, or no number at all, are answered with empty TwiML and kept
nowhere; a MessageSid no Twilio message could have is refused alike. SQLite and PostgreSQL; the
world is tests/fixtures/twilio_hooks.py's.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from service.storage.inbound_rows import INBOUND
from service.storage.tables import OPT_OUT
from service.web.keys import TRANSACTIONS
from tests.fixtures.twilio_hooks import Service, start
from tests.support import PHONE

__all__ = ["start"]  # the fixture, from tests/fixtures/twilio_hooks.py

IN = INBOUND.c
EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


async def kept(service: Service) -> list[tuple[str, str | None, str]]:
    """The texts kept: (phone, channel, body)."""

    def read(s: Session) -> list[tuple[str, str | None, str]]:
        rows = s.connection().execute(sa.select(IN.phone, IN.channel, IN.body)).all()
        return [(r[0], r[1], r[2]) for r in rows]

    found: list[tuple[str, str | None, str]] = await service.client.app[TRANSACTIONS].read(read)
    return found


async def opted_out(service: Service) -> set[str]:
    def read(s: Session) -> set[str]:
        return {r[0] for r in s.connection().execute(sa.select(OPT_OUT.c.phone))}

    found: set[str] = await service.client.app[TRANSACTIONS].read(read)
    return found


class TestChannelAddresses:
    async def test_a_whatsapp_stop_opts_the_number_out(self, start: Any) -> None:
        """STOP from `whatsapp:+14155550123` (21 characters: one more than the number columns
        held) opts out +14155550123 and cancels its messages; the text is kept with its
        channel."""
        service = await start()
        plan = await service.plan()
        response = await service.text("STOP", sender="whatsapp:" + PHONE)
        assert response.status == 200 and "no more texts" in await response.text()
        assert {m["status"] for m in await service.read(plan["treatment"]["id"])} == {"cancelled"}
        assert await opted_out(service) == {PHONE}
        assert await kept(service) == [(PHONE, "whatsapp", "STOP")]

    async def test_a_whatsapp_reply_is_kept_under_its_number(self, start: Any) -> None:
        """Other text from a channel address is kept under the number, like an SMS."""
        service = await start()
        response = await service.text("thanks", sender="WhatsApp:" + PHONE)
        assert response.status == 200
        assert await kept(service) == [(PHONE, "whatsapp", "thanks")]


class TestRefusedSenders:
    @pytest.mark.parametrize(
        "sender",
        [
            "whatsapp:+1415555012345678901234567",  # 40 characters, 25 digits
            "x" * 200,
            "whatsapp:+" + "1" * 190,
            "messenger:" + "+1" * 95,
            "+1415",  # too short for any number
            "Ana",
            "",
        ],
        ids=["40-chars", "200-letters", "200-digits", "200-mixed", "short", "name", "empty"],
    )
    async def test_refused_with_empty_twiml_and_kept_nowhere(self, start: Any, sender: str) -> None:
        """No number we could have texted: 200, `<Response/>`, nothing stored, counted."""
        service = await start()
        await service.plan()
        response = await service.text("STOP", sender=sender)
        assert response.status == 200
        assert await response.text() == EMPTY
        assert await kept(service) == []
        assert await opted_out(service) == set()
        metrics = await (await service.client.get("/metrics")).text()
        assert 'aftercare_replies_skipped_total{reason="sender"} 1.0' in metrics

    async def test_a_message_sid_no_twilio_message_has_is_refused(self, start: Any) -> None:
        """A 100-character MessageSid (the column holds 64): 200, empty TwiML, kept nowhere."""
        service = await start()
        response = await service.text("STOP", sid="SM" + "a" * 98)
        assert response.status == 200 and await response.text() == EMPTY
        assert await kept(service) == []
        metrics = await (await service.client.get("/metrics")).text()
        assert 'aftercare_replies_skipped_total{reason="sid"} 1.0' in metrics
