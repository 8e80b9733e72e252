"""The console's patient page and search (contract §16) over HTTP, on the conversation tests' world
(the real app, the real twilio client against a fake Twilio) with a staff account signed in
through the real form, on SQLite and PostgreSQL: the timeline in local time, `Show number`
audited, `Send` once per form, refusals shown and nothing sent, quiet hours, another clinic's
staff refused, CSRF, `no-store`."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import ClientResponse
from sqlmodel import Session, text

from service.clock import SystemClock
from service.web.keys import TRANSACTIONS
from tests.fixtures.console import EMAIL, add_account, csrf_of, sign_in
from tests.fixtures.conversations import Conversation, Start, start
from tests.processes import until_async as until
from tests.support import PHONE

__all__ = ["start"]
PAGE = "/console/clinics/glow/patients/pt_77"
_REQUEST = re.compile(r'name="request" value="([^"]+)"')


async def account(c: Conversation, database: str, **kwargs: Any) -> None:
    await add_account(database, clock=SystemClock(), **kwargs)
    await sign_in_as(c, kwargs.get("email", EMAIL))


async def sign_in_as(c: Conversation, email: str) -> None:
    answer = await sign_in(c.client, email=email)
    assert answer.status == 303, await answer.text()


async def form(c: Conversation, page: str = PAGE) -> tuple[str, str]:
    """The page's CSRF token and its Send form's one-time token."""
    answer = await c.client.get(page)
    assert answer.status == 200, await answer.text()
    body = await answer.text()
    found = _REQUEST.search(body)
    assert found
    return csrf_of(body), found.group(1)


async def send(
    c: Conversation, message: str, *, anyway: bool = False, tokens: tuple[str, str] | None = None
) -> ClientResponse:
    csrf, request = tokens or await form(c)
    data = {"csrf": csrf, "request": request, "message": message}
    if anyway:
        data["send_anyway"] = "yes"
    return await c.client.post(f"{PAGE}/messages", data=data, allow_redirects=False)


async def staff_texts(c: Conversation) -> list[tuple[str, str]]:
    def rows(s: Session) -> list[tuple[str, str]]:
        found = s.connection().execute(
            text("SELECT body, status FROM message WHERE kind = 'staff'")
        )
        return [(r[0], r[1]) for r in found]

    return list(await c.client.app[TRANSACTIONS].read(rows))


async def audit(c: Conversation) -> list[str]:
    def rows(s: Session) -> list[str]:
        found = s.connection().execute(text("SELECT action FROM audit ORDER BY id"))
        return [r[0] for r in found]

    return list(await c.client.app[TRANSACTIONS].read(rows))


def to_patient(c: Conversation, body: str) -> list[str]:
    """What the fake Twilio was handed for the patient starting with `body`."""
    return [b for b in c.to(PHONE) if b.startswith(body)]


class TestPage:
    async def test_the_timeline_is_in_local_time_and_the_number_shows_only_when_asked(
        self, start: Start, database: str
    ) -> None:
        """The check-in and the reply at the patient's local time (America/Los_Angeles), the
        last four digits only, `patient_viewed` audited; `Show number` (a POST) answers the
        page with the whole number, audited `number_revealed`; both `no-store`."""
        c = await start()
        plan = await c.checked_in(timezone="America/Los_Angeles")
        await c.text("2")
        await account(c, database)
        answer = await c.client.get(PAGE)
        assert answer.status == 200 and answer.headers["Cache-Control"] == "no-store"
        page = await answer.text()
        sent_at = datetime.fromisoformat((await c.messages(plan))[0]["sent_at"])
        local = sent_at.astimezone(ZoneInfo("America/Los_Angeles"))
        assert local.strftime("%a %d %b %Y, %H:%M") in page
        assert "America/Los_Angeles" in page
        assert "Hi Ana, how is your skin?" in page and "Reply from patient" in page
        assert "ending 0123" in page and PHONE not in page and PHONE[2:] not in page
        assert await audit(c) == ["sign_in", "patient_viewed"]
        shown = await c.client.post(f"{PAGE}/number", data={"csrf": csrf_of(page)})
        assert shown.status == 200 and shown.headers["Cache-Control"] == "no-store"
        assert PHONE in await shown.text() and PHONE not in str(shown.url)
        assert (await audit(c))[-2:] == ["patient_viewed", "number_revealed"]

    async def test_search_finds_by_name_id_and_last_four_and_links_the_page(
        self, start: Start, database: str
    ) -> None:
        c = await start()
        await c.plan()
        await account(c, database, clinics=("glow", "other"))
        for q in ("an", "pt_77", "0123"):
            page = await (await c.client.get("/console/patients", params={"q": q})).text()
            assert f'href="{PAGE}"' in page and "Ana" in page, q
            assert "number ending 0123 · Glow" in page  # several clinics: which one
        none = await (await c.client.get("/console/patients", params={"q": "zed"})).text()
        assert "No patient found" in none and PAGE not in none
        assert 'for="q">Search patients</label>' in none


class TestSend:
    async def test_a_text_goes_once_however_often_its_form_is_posted(
        self, start: Start, database: str
    ) -> None:
        """Send → 303 to the page saying "Sent"; the fake gets it once; posting the same form
        again (a double click) answers the same and sends nothing more."""
        c = await start()
        await c.checked_in()
        await account(c, database)
        tokens = await form(c)
        first = await send(c, "Hi Ana, call us today.", tokens=tokens)
        again = await send(c, "Hi Ana, call us today.", tokens=tokens)
        assert first.status == again.status == 303
        assert first.headers["Location"] == again.headers["Location"]
        await until(lambda: _async(len(to_patient(c, "Hi Ana, call us")) == 1))
        after = await (await c.client.get(first.headers["Location"])).text()
        assert "Sent" in after and "Hi Ana, call us today." in after
        assert len(await staff_texts(c)) == 1
        assert (await audit(c)).count("staff_text_sent") == 1
        twins = await form(c)  # two POSTs of one form at once: one text
        answers = await asyncio.gather(*(send(c, "Twice?", tokens=twins) for _ in range(2)))
        assert [a.status for a in answers] == [303, 303]
        await until(lambda: _async(len(to_patient(c, "Twice?")) == 1))
        assert len(await staff_texts(c)) == 2

    @pytest.mark.parametrize(
        ("patient", "stop", "reason"),
        [
            ({}, True, "opted out of the clinic&#39;s texts"),
            ({"sms_consent": False}, False, "does not consent to SMS"),
        ],
    )
    async def test_a_refused_text_shows_why_and_nothing_is_sent(
        self, start: Start, database: str, patient: dict[str, Any], stop: bool, reason: str
    ) -> None:
        c = await start()
        await c.plan(**patient)
        if stop:
            await c.text("STOP")
        await account(c, database)
        answer = await send(c, "Are you well?")
        assert answer.status == 409
        page = await answer.text()
        assert "There is a problem" in page and reason in page
        assert ">Are you well?</textarea>" in page  # the text typed is kept
        assert await staff_texts(c) == [] and to_patient(c, "Are you well?") == []

    @pytest.mark.parametrize("message", ["   ", "x" * 1601])
    async def test_a_blank_or_long_text_is_a_form_error_beside_the_field(
        self, start: Start, database: str, message: str
    ) -> None:
        c = await start()
        await c.plan()
        await account(c, database)
        answer = await send(c, message)
        assert answer.status == 422
        page = await answer.text()
        assert 'href="#message"' in page and 'id="message-error"' in page
        assert await staff_texts(c) == []

    async def test_in_quiet_hours_it_waits_unless_sent_anyway(
        self, start: Start, database: str
    ) -> None:
        now = datetime.now(UTC)
        quiet = {
            "start": f"{now - timedelta(hours=1):%H:%M}",
            "end": f"{now + timedelta(hours=2):%H:%M}",
        }
        c = await start(quiet_hours=quiet)
        await c.plan()
        await account(c, database)
        held = await send(c, "Held till morning")
        assert held.status == 303
        page = await (await c.client.get(held.headers["Location"])).text()
        assert f"Will be sent at {quiet['end']} (their time), after their quiet hours" in page
        anyway = await send(c, "Sent at night", anyway=True)
        assert anyway.status == 303
        await until(lambda: _async(len(to_patient(c, "Sent at night")) == 1))
        assert to_patient(c, "Held till morning") == []
        assert sorted(s for _, s in await staff_texts(c)) == ["scheduled", "sent"]


class TestRefusedRequests:
    async def test_another_clinics_staff_get_404_and_nothing_changes(
        self, start: Start, database: str
    ) -> None:
        c = await start()
        await c.plan()
        other = "desk@other.example"
        await account(c, database, email=other, clinics=("other",))
        csrf = csrf_of(await (await c.client.get("/console/patients")).text())
        assert (await c.client.get(PAGE)).status == 404
        shown = await c.client.post(f"{PAGE}/number", data={"csrf": csrf})
        assert shown.status == 404 and PHONE not in await shown.text()
        data = {"csrf": csrf, "request": "r" * 32, "message": "hello"}
        assert (await c.client.post(f"{PAGE}/messages", data=data)).status == 404
        found = await (await c.client.get("/console/patients", params={"q": "Ana"})).text()
        assert "No patient found" in found
        assert await staff_texts(c) == [] and await audit(c) == ["sign_in"]

    async def test_a_post_without_csrf_is_403_and_sends_nothing(
        self, start: Start, database: str
    ) -> None:
        c = await start()
        await c.plan()
        await account(c, database)
        _, request = await form(c)
        data = {"request": request, "message": "hello"}
        answer = await c.client.post(f"{PAGE}/messages", data=data, allow_redirects=False)
        assert answer.status == 403
        number = await c.client.post(f"{PAGE}/number", data={})
        assert number.status == 403 and PHONE not in await number.text()
        assert await staff_texts(c) == [] and "number_revealed" not in await audit(c)


async def _async(value: bool) -> bool:
    return value
