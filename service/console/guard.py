"""Security by default for every /console route (contract §16), in one middleware and one signal:

- a request without a live session is redirected (303) to the sign-in page, which remembers
  the page asked for (same-origin /console paths only);
- a POST without the session's CSRF token (form field `csrf`, or header `X-CSRF-Token`) is a
  403 page and reaches no handler; the sign-in form's own POST needs the pre-session token of
  its cookie (login CSRF: no other site can sign a nurse's browser into an account of theirs);
- a request carrying `X-Console-Poll` (a page's script polling) does not keep the session
  alive: an unattended page still signs out after the idle timeout;
- errors under /console are HTML pages, not problem+json;
- every console response carries the safe-page headers; every one but static files `no-store`.
"""

from __future__ import annotations

import hmac
from urllib.parse import quote

from aiohttp import web
from aiohttp.typedefs import Handler

from service.console import auth
from service.console.deps import CONSOLE
from service.console.pages import error_page

PREFIX = "/console"
STATIC = "/console/static/"
LOGIN = "/console/login"
PRE_COOKIE = "aftercare_signin"  # the sign-in form's token, before any session
POLL_HEADER = "X-Console-Poll"  # sent by a page's script polling for changes
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def is_console(path: str) -> bool:
    """Whether `path` is the console's."""
    return path == PREFIX or path.startswith(PREFIX + "/")


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Sessions, CSRF and HTML errors for /console; other paths pass untouched."""
    if not is_console(request.path):
        return await handler(request)
    try:
        return await _guarded(request, handler)
    except web.HTTPException as exc:
        if exc.status >= 400:
            return error_page(request, exc.status)
        location = exc.headers.get("Location", "/console/")
        return web.Response(status=exc.status, headers={"Location": location})


async def _guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(STATIC):
        return await handler(request)
    if request.path == LOGIN:
        if request.method == "POST" and not await _form_token_is(request, _pre_token(request)):
            return error_page(request, 403)
        return await handler(request)
    polling = POLL_HEADER in request.headers  # our script's, not a person's: no touch
    session = await auth.current(request.app[CONSOLE], request, touch=not polling)
    if session is None:
        return _to_login(request)
    request[auth.SESSION] = session
    if request.method not in ("GET", "HEAD", "OPTIONS") and not await _has_csrf(request, session):
        return error_page(request, 403)
    return await handler(request)


def _to_login(request: web.Request) -> web.Response:
    target = request.path_qs if request.method == "GET" else "/console/"
    return web.Response(status=303, headers={"Location": f"{LOGIN}?next={quote(target)}"})


async def _has_csrf(request: web.Request, session: auth.StaffSession) -> bool:
    header = request.headers.get("X-CSRF-Token", "")
    if header:
        return hmac.compare_digest(header.encode(), session.csrf.encode())
    return await _form_token_is(request, session.csrf)


async def _form_token_is(request: web.Request, expected: str) -> bool:
    if not expected or request.content_type not in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        return False
    given = (await request.post()).get("csrf", "")
    return isinstance(given, str) and hmac.compare_digest(given.encode(), expected.encode())


def _pre_token(request: web.Request) -> str:
    return request.cookies.get(PRE_COOKIE, "")


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a /console path of this origin, else the inbox."""
    if (
        not value
        or not is_console(value.split("?")[0])
        or value.startswith("//")
        or "\\" in value
        or any(ord(c) < 32 for c in value)
    ):
        return "/console/"
    return value


async def safe_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: the safe-page headers on every console response."""
    if not is_console(request.path):
        return
    response.headers.update(HEADERS)
    if not request.path.startswith(STATIC):
        response.headers["Cache-Control"] = "no-store"
