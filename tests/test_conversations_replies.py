"""The conversation's other replies (contract §10, §12), from outside: free text is answered with
the fallback and notified, in the patient's language; a watch level escalates when the clinic says
so; a reply outside every window is notified as reply.received; STOP SERUM cancels and suppresses
only serum until START SERUM, and a word that is no stop word is plain text; and the first message
ends in the footer of the patient's language. The world is tests/fixtures/conversations.py's."""

from __future__ import annotations

import json

from tests.fixtures.conversations import Start, start
from tests.processes import until_async as until
from tests.support import PHONE

__all__ = ["start"]  # the fixture, from tests/fixtures/conversations.py


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

    async def test_a_spanish_patient_gets_the_spanish_footer_on_an_english_only_step(
        self, start: Start
    ) -> None:
        """The patient's locale picks the footer, not the locale the step's text exists in: the
        check-in (in Spanish) expired unsent, the first text is the English-only serum note."""
        c = await start()
        await c.plan(due_in=-22 * 3600.0, locale="es")  # completed a day ago

        async def sent() -> bool:
            return len(c.to(PHONE)) == 1

        await until(sent)
        [first] = c.to(PHONE)
        assert first.startswith("Your hyaluronic acid serum, Ana.")
        assert first.endswith("\nResponda STOP para salir.")
