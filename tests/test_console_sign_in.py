"""Signing in to the staff console (contract §16): the form, one message for any wrong pair,
lockout by account, throttling by address, audit rows and the sign-in metric."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, text

from service.config import Settings
from service.storage.transactions import Transactions
from tests.fixtures.console import EMAIL, PASSWORD, Client, add_account, csrf_of, sign_in
from tests.helpers.prometheus import sample
from tests.support import FakeClock, make_settings

WRONG = "Email or password is wrong."


@pytest.fixture
def console_settings(db_path: Path) -> Settings:
    return make_settings(db_path)


@pytest.fixture
async def console(
    make_client: Callable[..., Awaitable[Client]], console_settings: Settings, clock: FakeClock
) -> Client:
    """The app with one account of clinic glow."""
    await add_account(console_settings.database.url, clock=clock)
    return await make_client(console_settings, clock=clock)


async def _audit(url: str) -> list[tuple[Any, ...]]:
    def work(s: Session) -> list[tuple[Any, ...]]:
        rows = s.connection().execute(text("SELECT clinic_id, actor, action, detail FROM audit"))
        return [tuple(r) for r in rows]

    transactions = Transactions.open(url)
    try:
        return await transactions.read(work)
    finally:
        await transactions.close()


class TestSignInForm:
    async def test_the_page_has_labelled_email_and_password_and_a_sign_in_button(
        self, console: Client
    ) -> None:
        """GET /console/login: labels Email and Password bound to their fields, Sign in."""
        page = await (await console.get("/console/login")).text()
        assert '<label class="label" for="email">Email</label>' in page
        assert '<label class="label" for="password">Password</label>' in page
        assert 'id="email"' in page and 'id="password"' in page and 'type="password"' in page
        assert ">Sign in</button>" in page

    async def test_the_right_pair_opens_the_inbox_audited_and_counted(
        self, console: Client, console_settings: Settings
    ) -> None:
        """A good sign-in redirects to the inbox, which shows the email; `sign_in` audited."""
        answer = await sign_in(console, email="  Nurse@Glow.Example ")
        assert (answer.status, answer.headers["Location"]) == (303, "/console/")
        inbox = await console.get("/console/")
        assert inbox.status == 200
        body = await inbox.text()
        assert "Inbox" in body and EMAIL in body and "Glow Skin Studio" in body
        assert await _audit(console_settings.database.url) == [("glow", EMAIL, "sign_in", None)]
        metrics = await (await console.get("/metrics")).text()
        assert sample(metrics, "aftercare_console_sign_ins_total", outcome="ok") == 1

    async def test_a_wrong_email_and_a_wrong_password_get_the_same_answer(
        self, console: Client, console_settings: Settings
    ) -> None:
        """Same status, same message; audited with the email typed, never the password."""
        unknown = await sign_in(console, email="nobody@glow.example")
        wrong = await sign_in(console, password="not the password")
        assert unknown.status == wrong.status == 401
        assert WRONG in await unknown.text() and WRONG in await wrong.text()
        rows = await _audit(console_settings.database.url)
        assert rows == [
            ("-", "nobody@glow.example", "sign_in_failed", "failed"),
            ("glow", EMAIL, "sign_in_failed", "failed"),
        ]
        assert "not the password" not in repr(rows)

    async def test_the_form_post_without_its_pre_session_token_is_refused(
        self, console: Client
    ) -> None:
        """Login CSRF: a POST of the right pair without the page's token is a 403, no session."""
        form = {"email": EMAIL, "password": PASSWORD, "csrf": "forged"}
        answer = await console.post("/console/login", data=form, allow_redirects=False)
        assert answer.status == 403
        assert "text/html" in answer.headers["Content-Type"]
        after = await console.get("/console/", allow_redirects=False)
        assert after.status == 303

    async def test_after_signing_in_the_page_asked_for_opens_same_origin_only(
        self, console: Client
    ) -> None:
        """`next` is followed for a /console path, and ignored for another origin's."""
        first = await console.get("/console/?tab=1", allow_redirects=False)
        assert first.headers["Location"] == "/console/login?next=/console/%3Ftab%3D1"
        answer = await sign_in(console, next_="/console/%3Ftab%3D1")
        assert answer.headers["Location"] == "/console/?tab=1"
        evil = await sign_in(console, next_="//evil.example/console/")
        assert evil.headers["Location"] == "/console/"


class TestLockout:
    async def test_five_failures_lock_the_account_for_fifteen_minutes(
        self,
        make_client: Callable[..., Awaitable[Client]],
        database: str,
        clock: FakeClock,
    ) -> None:
        """The right password is refused during the lock (the page says to wait), accepted
        after it; the failures are rows, so every replica sees the same lock. (Each attempt
        from an address of its own: the account is locked, not the address throttled.)"""
        settings = make_settings(database, server={"trust_forwarded_for": True})
        await add_account(database, clock=clock)
        client = await make_client(settings, clock=clock)
        for i in range(5):
            wrong = await sign_in(client, password="wrong password!", peer=f"203.0.113.{i}")
            assert wrong.status == 401
            clock.advance(timedelta(minutes=1))
        locked = await sign_in(client, peer="198.51.100.1")
        assert locked.status == 429
        assert "Wait 15 minutes" in await locked.text()
        clock.advance(timedelta(minutes=13))  # 14 minutes after the fifth failure
        assert (await sign_in(client, peer="198.51.100.1")).status == 429
        clock.advance(timedelta(minutes=1, seconds=1))
        assert (await sign_in(client, peer="198.51.100.1")).status == 303
        metrics = await (await client.get("/metrics")).text()
        assert sample(metrics, "aftercare_console_sign_ins_total", outcome="locked") == 2
        assert sample(metrics, "aftercare_console_sign_ins_total", outcome="failed") == 5

    async def test_failures_spread_over_more_than_fifteen_minutes_lock_nothing(
        self, console: Client, clock: FakeClock
    ) -> None:
        """Five failures 4 minutes apart: never five within 15 minutes."""
        for _ in range(5):
            await sign_in(console, password="wrong password!")
            clock.advance(timedelta(minutes=4))
        assert (await sign_in(console)).status == 303


class TestThrottling:
    async def test_failures_from_one_address_throttle_it_for_every_account(
        self, console: Client, console_settings: Settings, clock: FakeClock
    ) -> None:
        """Five failures on five emails from one peer: the sixth attempt, even right, waits."""
        for i in range(5):
            assert (await sign_in(console, email=f"guess{i}@glow.example")).status == 401
        throttled = await sign_in(console)
        assert throttled.status == 429
        assert "Wait 15 minutes" in await throttled.text()
        metrics = await (await console.get("/metrics")).text()
        assert sample(metrics, "aftercare_console_sign_ins_total", outcome="throttled") == 1

    async def test_a_trusted_proxy_s_forwarded_address_is_the_one_throttled(
        self, make_client: Callable[..., Awaitable[Client]], db_path: Path, clock: FakeClock
    ) -> None:
        """With server.trust_forwarded_for, X-Forwarded-For's last hop is the address."""
        settings = make_settings(db_path, server={"trust_forwarded_for": True})
        await add_account(settings.database.url, clock=clock)
        client = await make_client(settings, clock=clock)
        for i in range(5):
            await sign_in(client, email=f"guess{i}@x.example", peer="10.0.0.1, 203.0.113.9")
        assert (await sign_in(client, peer="203.0.113.9")).status == 429
        assert (await sign_in(client, peer="203.0.113.10")).status == 303

    async def test_without_trust_the_header_is_ignored(self, console: Client) -> None:
        """By default X-Forwarded-For changes nothing: the peer is throttled."""
        for i in range(5):
            await sign_in(console, email=f"guess{i}@x.example", peer=f"198.51.100.{i}")
        assert (await sign_in(console, peer="198.51.100.99")).status == 429


async def test_csrf_of_reads_the_hidden_field() -> None:
    """The helper finds the form's token."""
    assert csrf_of('<input type="hidden" name="csrf" value="abc">') == "abc"
