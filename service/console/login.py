"""The sign-in page, its form's POST, and sign-out (contract §16)."""

from __future__ import annotations

import secrets

from aiohttp import web

from service.console import auth, signin
from service.console.deps import CONSOLE, Console
from service.console.guard import LOGIN, PRE_COOKIE, safe_next
from service.console.pages import render
from service.console.signin import Attempt, Outcome

routes = web.RouteTableDef()

WRONG = "Email or password is wrong."
WAIT = "Too many failed attempts. Wait 15 minutes, then try again."


@routes.get(LOGIN)
async def login_page(request: web.Request) -> web.Response:
    """The form: Email, Password, Sign in; a fresh pre-session token in cookie and form."""
    return _form(request, status=200)


@routes.post(LOGIN)
async def login(request: web.Request) -> web.Response:
    """Sign in (the guard has checked the form's pre-session token); back to the page asked for."""
    console = request.app[CONSOLE]
    form = await request.post()
    email = signin.normal_email(str(form.get("email", "")))
    password = str(form.get("password", ""))
    address = _address(console, request)
    result = await signin.attempt(console, email=email, password=password, address=address)
    if result.outcome is not Outcome.OK or result.account is None:
        return _refused(request, result, email)
    response = web.Response(status=303, headers={"Location": safe_next(request.query.get("next"))})
    await auth.start(console, response, staff_id=result.account.id)
    response.del_cookie(PRE_COOKIE, path=auth.PATH)
    return response


def _refused(request: web.Request, result: Attempt, email: str) -> web.Response:
    if result.outcome is Outcome.FAILED:
        return _form(request, status=401, error=WRONG, email=email)
    return _form(request, status=429, error=WAIT, email=email)


def _form(request: web.Request, *, status: int, error: str = "", email: str = "") -> web.Response:
    token = secrets.token_urlsafe(32)
    action = LOGIN + ("?" + request.query_string if request.query_string else "")
    context = {"login_csrf": token, "error": error, "email": email, "action": action}
    response = render(request, "login.html", context, status=status)
    auth.set_cookie(request.app[CONSOLE], response, PRE_COOKIE, token)
    return response


def _address(console: Console, request: web.Request) -> str:
    """The peer's address: the proxy's last X-Forwarded-For hop only when it is trusted."""
    forwarded = request.headers.get("X-Forwarded-For", "")
    if console.settings.server.trust_forwarded_for and forwarded:
        return forwarded.split(",")[-1].strip()
    return request.remote or "unknown"


@routes.post("/console/logout")
async def logout(request: web.Request) -> web.Response:
    """End the session (the guard has checked its CSRF token) and go to the sign-in page."""
    response = web.Response(status=303, headers={"Location": LOGIN})
    await auth.end(request.app[CONSOLE], request, response)
    return response
