"""The console's inbox over HTTP (contract §16), on the conversation tests' world (the real app, the
real twilio client against a fake Twilio, texts posted as Twilio signs them): items shown and
acted on by plain forms (no JavaScript), another clinic's staff refused, CSRF, the polling
endpoints, and polling that does not keep an unattended session alive."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pytest_aiohttp import AiohttpClient

from service.clock import SystemClock
from service.console.inbox_view import waited
from tests.fixtures.console import EMAIL, Client, add_account, csrf_of, sign_in
from tests.fixtures.conversations import Conversation, Start, start
from tests.support import PHONE, FakeClock, make_settings

__all__ = ["start"]
OTHER_EMAIL = "desk@other.example"
POLL = {"X-Console-Poll": "1"}


async def _signed_in(c: Conversation, database: str) -> Client:
    await add_account(database, clock=SystemClock())
    assert (await sign_in(c.client)).status == 303
    return c.client


async def _page(client: Client, path: str = "/console/") -> str:
    answer = await client.get(path, allow_redirects=False)
    assert answer.status == 200, await answer.text()
    return str(await answer.text())


def _ids(page: str, field: str) -> list[str]:
    return re.findall(rf'name="{field}" value="([^"]+)"', page)


async def _post(client: Client, path: str, **form: str) -> Any:
    return await client.post(path, data=form, allow_redirects=False)


@pytest.fixture
async def inbox(start: Start, database: str) -> Conversation:
    """Ana checked in, then texted "3" (an escalation) and "2" (a watch reply); the glow
    nurse signed in on `c.client`."""
    c = await start()
    await c.checked_in()
    await c.text("3")
    await c.text("2")
    await _signed_in(c, database)
    return c


class TestPage:
    async def test_items_newest_first_with_forms_that_work_without_javascript(
        self, inbox: Conversation
    ) -> None:
        """The reply, then the escalation (first name, last four, the reply, how long, the
        buttons, the patient's link; never the whole number); Acknowledge and Mark done as
        plain form POSTs answer 303 to the inbox with a fixed confirmation."""
        page = await _page(inbox.client)
        assert page.index("Reply (Watch)") < page.index("Urgent reply")
        assert "Ana" in page and "number ending 0123" in page and PHONE not in page
        assert "Open for under 1 min" in page and ">Acknowledge</button>" in page
        assert page.count(">Mark done</button>") == 2
        assert 'href="/console/clinics/glow/patients/pt_77"' in page
        [escalation] = _ids(page, "escalation")
        csrf = csrf_of(page)
        answer = await _post(
            inbox.client, "/console/inbox/acknowledge", csrf=csrf, escalation=escalation
        )
        assert (answer.status, answer.headers["Location"]) == (303, "/console/?done=acknowledged")
        [api] = (await inbox.escalations())["escalations"]
        assert api["state"] == "acknowledged" and api["acknowledged_by"] == EMAIL
        page = await _page(inbox.client, answer.headers["Location"])
        assert "will not be alerted again" in page and "Urgent reply" not in page
        [reply] = _ids(page, "item")
        answer = await _post(inbox.client, "/console/inbox/done", csrf=csrf, item=reply)
        assert answer.headers["Location"] == "/console/?done=done"
        again = await _post(inbox.client, "/console/inbox/done", csrf=csrf, item=reply)
        assert again.headers["Location"] == "/console/?done=already"
        page = await _page(inbox.client, "/console/?done=<script>")
        assert "Nothing needs a person right now." in page and "<script>" not in page

    async def test_another_clinics_staff_see_nothing_and_change_nothing(
        self, inbox: Conversation, database: str, aiohttp_client: AiohttpClient
    ) -> None:
        """A desk account of clinic "other": an empty inbox; its Acknowledge and Mark done of
        glow's items (with its own valid token) are 404 pages, and glow's items stay."""
        page = await _page(inbox.client)
        [escalation], items = _ids(page, "escalation"), _ids(page, "item")
        await add_account(database, clock=SystemClock(), email=OTHER_EMAIL, clinics=("other",))
        desk: Client = await aiohttp_client(inbox.client.server)
        assert (await sign_in(desk, email=OTHER_EMAIL)).status == 303
        theirs = await _page(desk)
        assert "Nothing needs a person" in theirs and "Ana" not in theirs
        csrf = csrf_of(theirs)
        ack = await _post(desk, "/console/inbox/acknowledge", csrf=csrf, escalation=escalation)
        assert ack.status == 404 and "text/html" in ack.headers["Content-Type"]
        for item in items:
            assert (await _post(desk, "/console/inbox/done", csrf=csrf, item=item)).status == 404
        assert "Ana" not in await (await desk.get("/console/inbox/items")).text()
        assert _ids(await _page(inbox.client), "item") == items
        [api] = (await inbox.escalations())["escalations"]
        assert api["state"] == "open" and api["acknowledged_by"] is None

    async def test_posts_without_the_token_are_403_and_change_nothing(
        self, inbox: Conversation
    ) -> None:
        """Acknowledge and Mark done without (or with a wrong) CSRF token: 403, no change;
        an unknown or overlong id with the token: 404."""
        page = await _page(inbox.client)
        [escalation], items = _ids(page, "escalation"), _ids(page, "item")
        for csrf in ({}, {"csrf": "wrong"}):
            ack = await _post(
                inbox.client, "/console/inbox/acknowledge", escalation=escalation, **csrf
            )
            done = await _post(inbox.client, "/console/inbox/done", item=items[0], **csrf)
            assert (ack.status, done.status) == (403, 403)
        assert _ids(await _page(inbox.client), "item") == items
        token = csrf_of(page)
        for item in ("reply:999999", "nonsense", "x" * 65, ""):
            answer = await _post(inbox.client, "/console/inbox/done", csrf=token, item=item)
            assert answer.status == 404


class TestPolling:
    async def test_the_version_changes_with_a_new_item_and_the_fragment_lists_it(
        self, inbox: Conversation
    ) -> None:
        """`/console/inbox/version` is JSON, no-store; it changes when a text arrives, and
        `/console/inbox/items` is the page's list alone (same partial), no-store."""
        answer = await inbox.client.get("/console/inbox/version", headers=POLL)
        assert answer.status == 200 and answer.headers["Cache-Control"] == "no-store"
        before = (await answer.json())["version"]
        await inbox.text("my cheek is still red, is that normal?")
        after = (await (await inbox.client.get("/console/inbox/version")).json())["version"]
        assert after != before
        fragment = await inbox.client.get("/console/inbox/items", headers=POLL)
        assert fragment.headers["Cache-Control"] == "no-store"
        html = await fragment.text()
        assert html.lstrip().startswith('<div id="inbox-items"') and "<html" not in html
        assert f'data-version="{after}"' in html and "is that normal?" in html

    async def test_the_endpoints_need_a_session(self, start: Start) -> None:
        """Without a session both redirect to sign in and show nothing."""
        c = await start()
        for path in ("/console/inbox/version", "/console/inbox/items"):
            answer = await c.client.get(path, allow_redirects=False)
            assert answer.status == 303 and answer.headers["Location"].startswith("/console/login")


async def test_polling_does_not_keep_an_unattended_session_alive(
    make_client: Callable[..., Awaitable[Client]], db_path: Path, clock: FakeClock
) -> None:
    """The script's polls (X-Console-Poll) are no sign of a person: 30 minutes after the last
    page a person asked for, the session has ended however often the page polled."""
    settings = make_settings(db_path)
    await add_account(settings.database.url, clock=clock)
    client = await make_client(settings, clock=clock)
    assert (await sign_in(client)).status == 303
    for _ in range(5):  # 25 minutes of polling
        clock.advance(timedelta(minutes=5))
        assert (await client.get("/console/inbox/version", headers=POLL)).status == 200
    clock.advance(timedelta(minutes=5))
    answer = await client.get("/console/inbox/version", headers=POLL, allow_redirects=False)
    assert answer.status == 303


@pytest.mark.parametrize(
    ("seconds", "said"),
    [
        (0, "under 1 min"),
        (59.9, "under 1 min"),
        (12 * 60 + 30, "12 min"),
        (3600, "1 h"),
        (2 * 3600 + 5 * 60, "2 h 5 min"),
        (30 * 3600, "1 day"),
        (3 * 86400 + 60, "3 days"),
    ],
)
def test_waiting_times_read_as_a_person_says_them(seconds: float, said: str) -> None:
    """How long an item has been open, as the inbox shows it."""
    assert waited(seconds) == said
