"""Alerts and acknowledgements name the escalation (contract §14): each escalation has a short code
its alerts carry (`Reply ACK 4821`), `ACK <code>` acknowledges the one named, `ACK` alone the
one last texted to that number (not the clinic's oldest), an unknown code is answered plainly.
The world is tests/fixtures/conversations.py's (the real app over HTTP, SQLite and PostgreSQL).
"""

from __future__ import annotations

import re
from typing import Any

from tests.fixtures.conversations import NURSE, Conversation, Start, alerted, start
from tests.helpers.client import bearer
from tests.support import TOKEN

__all__ = ["start"]  # the fixture, from tests/fixtures/conversations.py

BEA = {"id": "pt_88", "first_name": "Bea", "phone": "+14155550177"}


async def two_open(c: Conversation) -> tuple[dict[str, Any], dict[str, Any]]:
    """Ana's escalation, then Bea's, both open and both alerted; (older, newer) as viewed."""
    await c.checked_in()
    await c.checked_in(**BEA)
    await c.text("3")
    await alerted(c, 1)
    await c.text("3", sender=BEA["phone"])
    await alerted(c, 2)
    newer, older = (await c.escalations(state="open"))["escalations"]
    return older, newer


async def open_ids(c: Conversation) -> set[str]:
    return {e["id"] for e in (await c.escalations(state="open"))["escalations"]}


class TestCodes:
    async def test_each_alert_carries_its_escalations_code(self, start: Start) -> None:
        """Four digits, one per open escalation, in the view and at the end of its alert."""
        c = await start()
        older, newer = await two_open(c)
        assert re.fullmatch(r"[1-9][0-9]{3}", older["code"]) and older["code"] != newer["code"]
        first, second = c.to(NURSE)
        assert "Ana" in first and first.endswith(f"Reply ACK {older['code']} when handled.")
        assert "Bea" in second and second.endswith(f"Reply ACK {newer['code']} when handled.")

    async def test_ack_with_the_older_code_acknowledges_that_one_only(self, start: Start) -> None:
        c = await start()
        older, newer = await two_open(c)
        answer = await c.text(f"ack {older['code']}", sender=NURSE)
        assert "Acknowledged: Ana (phone ending 0123), treatment" in answer
        assert f"Still open: 1 (ACK {newer['code']})" in answer
        assert await open_ids(c) == {newer["id"]}
        [done] = (await c.escalations(state="acknowledged"))["escalations"]
        assert done["id"] == older["id"] and done["acknowledged_by"].endswith("0142")

    async def test_plain_ack_acknowledges_the_last_texted_to_that_number(
        self, start: Start
    ) -> None:
        """Bea's alert came last: ACK is hers, though Ana's is older."""
        c = await start()
        older, newer = await two_open(c)
        answer = await c.text("ACK", sender=NURSE)
        assert "Acknowledged: Bea (phone ending 0177)" in answer
        assert f"(ACK {newer['code']})" in answer
        assert await open_ids(c) == {older["id"]}

    async def test_an_unknown_code_is_answered_plainly_and_changes_nothing(
        self, start: Start
    ) -> None:
        c = await start()
        older, newer = await two_open(c)
        unknown = next(
            code for code in ("1000", "1001", "1002") if code not in (older["code"], newer["code"])
        )
        answer = await c.text(f"ACK {unknown}", sender=NURSE)
        assert f"Glow has no escalation with code {unknown}." in answer
        assert "Still open: 2" in answer and older["code"] in answer
        assert await open_ids(c) == {older["id"], newer["id"]}

    async def test_a_code_acknowledged_already_says_by_whom(self, start: Start) -> None:
        """Acknowledged through the API, then ACK <code> by text: told it was, by whom."""
        c = await start()
        older, _ = await two_open(c)
        response = await c.client.post(
            f"/v1/clinics/glow/escalations/{older['id']}/acknowledge",
            json={"by": "nurse Kim"},
            headers=bearer(TOKEN),
        )
        assert response.status == 200 and (await response.json())["code"] == older["code"]
        answer = await c.text(f"ACK {older['code']}", sender=NURSE)
        assert answer.count("Already acknowledged by nurse Kim: Ana") == 1

    async def test_plain_ack_before_any_alert_says_so(self, start: Start) -> None:
        c = await start()
        answer = await c.text("ACK", sender=NURSE)
        assert "No alert of Glow was texted to this number. Still open: 0." in answer
