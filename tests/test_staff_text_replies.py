"""Replies to a staff text (contract §16): within 48 h they are that conversation's — kept on the
staff text's history and notified as `reply.received` naming it — and the most recent of a
check-in in its window and a staff text is the one answered. Texts posted as Twilio signs them
to the real app; the world is tests/fixtures/staff_texts.py's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import Session

from service.conversations.staff_texts import answered_staff_text
from service.reads import inbox
from service.web.keys import TRANSACTIONS
from tests.fixtures.conversations import Conversation, Start, start
from tests.fixtures.staff_texts import listed_staff, sent_to, staff_text
from tests.processes import until_async as until
from tests.support import PHONE

__all__ = ["start"]  # the fixture, from tests/fixtures/conversations.py


async def staff_text_sent(c: Conversation, body: str = "How is it healing?") -> str:
    """A staff text sent (and recorded as sent); its id."""
    filed = await staff_text(c.client, body)

    async def sent() -> bool:
        return bool((await listed_staff(c.client))["status"] == "sent")

    await until(sent)
    return filed.message_id


def of_type(notes: list[dict[str, Any]], type_: str) -> list[dict[str, Any]]:
    return [n for n in notes if n["type"] == type_]


class TestReplies:
    async def test_a_reply_within_48_hours_lands_on_the_staff_text(self, start: Start) -> None:
        """Kept on its history (numbers masked), notified as reply.received naming it, and an
        unhandled reply in the console's inbox."""
        c = await start()
        await c.plan(due_in=3600)
        staff_id = await staff_text_sent(c)
        assert (await c.text("Much better, call me on +14155559999")).endswith("<Response/>")
        history = (await listed_staff(c.client))["history"]
        assert history[-1]["detail"].startswith("patient replied: Much better, call me on ")
        assert "9999" in history[-1]["detail"] and "+14155559999" not in history[-1]["detail"]
        [note] = of_type(await c.notifications(), "reply.received")
        assert (note["data"]["message"]["id"], note["data"]["message"]["kind"]) == (
            staff_id,
            "staff",
        )
        assert note["data"]["reply"]["level"] == "free_text"
        [item] = await c.client.app[TRANSACTIONS].read(
            lambda s: inbox.items(s, ["glow"], now=datetime.now(UTC))
        )
        assert (item["kind"], item["level"], item["patient"]["patient_id"]) == (
            "reply",
            "free_text",
            "pt_77",
        )

    async def test_a_staff_text_after_a_check_in_takes_the_reply(self, start: Start) -> None:
        """The nurse wrote last: "3" answers her, not the check-in (no triage, no escalation)."""
        c = await start()
        await c.checked_in()
        staff_id = await staff_text_sent(c)
        assert (await c.text("3")).endswith("<Response/>")
        notes = await c.notifications()
        assert of_type(notes, "checkin.replied") == []
        assert of_type(notes, "reply.received")[0]["data"]["message"]["id"] == staff_id
        assert (await c.escalations())["escalations"] == []

    async def test_a_check_in_after_a_staff_text_takes_the_reply(self, start: Start) -> None:
        """The check-in came last: "1" is its answer, triaged and answered as ever."""
        c = await start()
        # The check-in goes after the staff text whatever the machine's load: the patient's
        # first treatment (its check-in an hour away) makes the staff text possible, and a
        # second treatment's check-in is due once the staff text has gone.
        await c.plan(due_in=3600)
        await staff_text_sent(c)
        plan = await c.plan(due_in=0)

        async def checked_in() -> bool:
            return bool((await c.messages(plan))[0]["status"] == "sent")

        await until(checked_in)
        assert await sent_to(c.fake, 2)
        assert "Glad to hear it." in await c.text("1")
        assert len(of_type(await c.notifications(), "checkin.replied")) == 1

    async def test_the_window_is_48_hours(self, start: Start) -> None:
        """47 h after it was sent a text answers the staff text; 49 h after, none."""
        c = await start()
        await c.plan(due_in=3600)
        staff_id = await staff_text_sent(c)
        now = datetime.now(UTC)

        def answered(hours: int) -> Any:
            return lambda s: answered_staff_text(s, "glow", PHONE, now + timedelta(hours=hours))

        read = c.client.app[TRANSACTIONS].read
        assert await read(answered(47)) == staff_id
        assert await read(answered(49)) is None
        assert await read(lambda s: answered_staff_text(s, "other", PHONE, now)) is None
        assert await read(lambda s: _none_for_another_number(s, now)) is None


def _none_for_another_number(s: Session, now: datetime) -> str | None:
    return answered_staff_text(s, "glow", "+14155550999", now)
