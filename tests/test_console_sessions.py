"""Console sessions and safe pages (contract §16): cookies, timeouts, sign-out, CSRF, headers, and
an account's clinics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp import web

from service.console import require_clinic, signed_in
from service.web.app import create_app
from tests.fixtures.console import Client, add_account, csrf_token, sign_in
from tests.support import FakeClock, make_settings

HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


async def _probe(request: web.Request) -> web.Response:
    """A page of one clinic, as the patient pages will be: require_clinic first."""
    require_clinic(request, request.match_info["clinic_id"])
    return web.Response(text=",".join(signed_in(request).clinic_ids))


@pytest.fixture
async def console(
    aiohttp_client: Callable[..., Awaitable[Client]], db_path: Path, clock: FakeClock
) -> Client:
    """The app (with a clinic page of the test's) and one account of clinic glow, signed in."""
    settings = make_settings(db_path)
    await add_account(settings.database.url, clock=clock)
    app = create_app(settings, clock=clock)
    app.router.add_get("/console/clinics/{clinic_id}/probe", _probe)
    app.router.add_post("/console/clinics/{clinic_id}/probe", _probe)
    client = await aiohttp_client(app)
    assert (await sign_in(client)).status == 303
    return client


async def _is_signed_in(client: Client) -> bool:
    answer = await client.get("/console/", allow_redirects=False)
    assert answer.status in (200, 303)
    return answer.status == 200


class TestCookies:
    async def test_the_session_cookie_is_httponly_lax_and_scoped_to_the_console(
        self, make_client: Callable[..., Awaitable[Client]], db_path: Path, clock: FakeClock
    ) -> None:
        """Over http: HttpOnly, SameSite=Lax, Path=/console, and not Secure."""
        settings = make_settings(db_path)
        await add_account(settings.database.url, clock=clock)
        answer = await sign_in(await make_client(settings, clock=clock))
        cookie = answer.cookies["aftercare_session"]
        assert cookie["httponly"] and cookie["samesite"] == "Lax"
        assert cookie["path"] == "/console" and not cookie["secure"]

    async def test_an_https_public_base_url_makes_every_console_cookie_secure(
        self, make_client: Callable[..., Awaitable[Client]], db_path: Path, clock: FakeClock
    ) -> None:
        """With public_base_url https, the pre-session and the session cookies are Secure."""
        settings = make_settings(db_path, server={"public_base_url": "https://care.example"})
        client = await make_client(settings, clock=clock)
        page = await client.get("/console/login")
        assert page.cookies["aftercare_signin"]["secure"]
        raw = page.headers.getall("Set-Cookie")
        assert all("Secure" in c and "HttpOnly" in c and "SameSite=Lax" in c for c in raw)


class TestTimeouts:
    async def test_a_session_ends_after_thirty_minutes_idle(
        self, console: Client, clock: FakeClock
    ) -> None:
        """29 minutes between requests keep it; 30 end it."""
        clock.advance(timedelta(minutes=29))
        assert await _is_signed_in(console)
        clock.advance(timedelta(minutes=30))
        answer = await console.get("/console/", allow_redirects=False)
        assert (answer.status, answer.headers["Location"]) == (303, "/console/login?next=/console/")

    async def test_a_session_ends_twelve_hours_after_signing_in_however_busy(
        self, console: Client, clock: FakeClock
    ) -> None:
        """A request every 20 minutes keeps it alive until 12 hours, not after."""
        for _ in range(35):  # 11 h 40 min
            clock.advance(timedelta(minutes=20))
            assert await _is_signed_in(console)
        clock.advance(timedelta(minutes=20))
        assert not await _is_signed_in(console)

    async def test_sign_out_ends_the_session(self, console: Client) -> None:
        """The Sign out form (with its token) ends it; the inbox then redirects to sign in."""
        token = await csrf_token(console)
        answer = await console.post("/console/logout", data={"csrf": token}, allow_redirects=False)
        assert (answer.status, answer.headers["Location"]) == (303, "/console/login")
        assert not await _is_signed_in(console)


class TestCsrf:
    async def test_a_post_without_the_token_is_403_and_changes_nothing(
        self, console: Client
    ) -> None:
        """Sign out without (or with a wrong) token: a 403 page, and still signed in."""
        for data in ({}, {"csrf": "wrong"}):
            answer = await console.post("/console/logout", data=data, allow_redirects=False)
            assert answer.status == 403
            assert "text/html" in answer.headers["Content-Type"]
        assert await _is_signed_in(console)

    async def test_the_header_serves_our_script(self, console: Client) -> None:
        """X-CSRF-Token carries the token as well as the form field does."""
        token = await csrf_token(console)
        bad = await console.post("/console/clinics/glow/probe", headers={"X-CSRF-Token": "no"})
        assert bad.status == 403
        good = await console.post("/console/clinics/glow/probe", headers={"X-CSRF-Token": token})
        assert good.status == 200

    async def test_a_post_without_a_session_goes_to_sign_in(
        self, make_client: Callable[..., Awaitable[Client]], db_path: Path
    ) -> None:
        """Not signed in: any console request redirects to the sign-in page."""
        client = await make_client(make_settings(db_path))
        for method, path in (("POST", "/console/logout"), ("GET", "/console/nowhere")):
            answer = await client.request(method, path, allow_redirects=False)
            assert answer.status == 303
            assert answer.headers["Location"].startswith("/console/login?next=")


class TestSafePages:
    async def test_every_console_response_carries_the_safe_headers(self, console: Client) -> None:
        """Pages, redirects, errors and static files; no-store on all but static files."""
        for path in ("/console/", "/console/login", "/console", "/console/nowhere"):
            answer = await console.get(path, allow_redirects=False)
            assert {k: answer.headers.get(k) for k in HEADERS} == HEADERS, path
            assert answer.headers["Cache-Control"] == "no-store", path
        css = await console.get("/console/static/console.css")
        assert css.status == 200 and "text/css" in css.headers["Content-Type"]
        assert {k: css.headers.get(k) for k in HEADERS} == HEADERS
        assert css.headers.get("Cache-Control") != "no-store"

    async def test_an_unknown_console_page_is_an_html_404(self, console: Client) -> None:
        """Signed in, a missing page is the console's own page, not problem+json."""
        answer = await console.get("/console/nowhere")
        assert answer.status == 404 and "text/html" in answer.headers["Content-Type"]
        assert "Page not found" in await answer.text()

    async def test_the_api_keeps_its_problem_json(self, console: Client) -> None:
        """Outside /console nothing changes."""
        answer = await console.get("/v1/nowhere")
        assert answer.headers["Content-Type"].startswith("application/problem+json")
        assert "Content-Security-Policy" not in answer.headers


class TestClinics:
    async def test_an_account_sees_its_clinic_and_not_another(self, console: Client) -> None:
        """clinic_ids are the account's; require_clinic answers 404 for any other clinic."""
        mine = await console.get("/console/clinics/glow/probe")
        assert (mine.status, await mine.text()) == (200, "glow")
        other = await console.get("/console/clinics/other/probe")
        assert other.status == 404 and "text/html" in other.headers["Content-Type"]

    async def test_a_disabled_account_s_sessions_end(
        self, console: Client, db_path: Path, clock: FakeClock
    ) -> None:
        """Disabling (as `staff disable` does) ends the sessions at once."""
        from service.storage import staff
        from service.storage.transactions import Transactions

        transactions = Transactions.open(f"sqlite+aiosqlite:///{db_path}")
        now = clock.now()
        await transactions.write(lambda s: staff.disable(s, "nurse@glow.example", now=now))
        await transactions.close()
        assert not await _is_signed_in(console)
