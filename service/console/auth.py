"""Who is signed in: sessions named by a random cookie, kept as rows (contract §16).

The API the console's pages use:
- `signed_in(request) -> StaffSession`: the account behind a request (the guard middleware
  has already refused any request without a live session, so a page handler just calls it);
- `require_clinic(request, clinic_id)`: a 404 page unless the account belongs to that clinic
  (an account sees nothing of any other clinic, not even whether it exists).

The cookie holds a random token; the row is named by its SHA-256, so the database alone signs
no one in. A session ends after IDLE without a request, ABSOLUTE after signing in, or at
sign-out. `seen_at` is written at most once every TOUCH_EVERY, not on every request.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from aiohttp import web

from service.console.deps import Console
from service.storage import staff_sessions
from service.storage.staff_sessions import SessionRow

COOKIE = "aftercare_session"
PATH = "/console"
IDLE = timedelta(minutes=30)
ABSOLUTE = timedelta(hours=12)
TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True, kw_only=True)
class StaffSession:
    """The signed-in account of a request: its clinics, and the CSRF token its forms carry."""

    staff_id: int
    email: str
    name: str | None
    clinic_ids: tuple[str, ...]
    csrf: str


SESSION = web.RequestKey("console_session", StaffSession)


def signed_in(request: web.Request) -> StaffSession:
    """The signed-in account of `request` (set by the guard; a bug if missing)."""
    return request[SESSION]


def require_clinic(request: web.Request, clinic_id: str) -> None:
    """Raise 404 unless the signed-in account belongs to clinic `clinic_id`."""
    if clinic_id not in signed_in(request).clinic_ids:
        raise web.HTTPNotFound()


def token_hash(token: str) -> str:
    """The row name of a cookie's token."""
    return hashlib.sha256(token.encode()).hexdigest()


async def start(console: Console, response: web.StreamResponse, *, staff_id: int) -> None:
    """Open a session for `staff_id` and set its cookie on `response`."""
    token, now = secrets.token_urlsafe(32), console.clock.now()
    await console.transactions.write(
        lambda s: staff_sessions.open_session(
            s,
            token_hash=token_hash(token),
            staff_id=staff_id,
            csrf=secrets.token_urlsafe(32),
            now=now,
            ended_before=now - IDLE,
        )
    )
    set_cookie(console, response, COOKIE, token)


def set_cookie(console: Console, response: web.StreamResponse, name: str, value: str) -> None:
    """Set a console cookie: HttpOnly, SameSite=Lax, Path=/console, Secure over https."""
    response.set_cookie(
        name, value, path=PATH, httponly=True, samesite="Lax", secure=console.secure_cookies
    )


async def current(
    console: Console, request: web.Request, *, touch: bool = True
) -> StaffSession | None:
    """The live session named by the request's cookie, touched (unless `touch` is false: a
    page's own polling is no sign of a person); None when there is none."""
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    name = token_hash(token)
    row = await console.transactions.read(lambda s: staff_sessions.find_session(s, name))
    now = console.clock.now()
    if row is None or not _live(row, now):
        if row is not None:
            await console.transactions.write(lambda s: staff_sessions.end_session(s, name))
        return None
    if touch and now - row.seen_at >= TOUCH_EVERY:
        await console.transactions.write(lambda s: staff_sessions.touch_session(s, name, now=now))
    return _view(console, row)


def _live(row: SessionRow, now: datetime) -> bool:
    return now - row.seen_at < IDLE and now - row.created_at < ABSOLUTE


def _view(console: Console, row: SessionRow) -> StaffSession:
    # A clinic taken out of the configuration is no longer the account's.
    clinics = tuple(c for c in row.clinic_ids if c in console.settings.clinics)
    return StaffSession(
        staff_id=row.staff_id, email=row.email, name=row.name, clinic_ids=clinics, csrf=row.csrf
    )


async def end(console: Console, request: web.Request, response: web.StreamResponse) -> None:
    """End the request's session (sign-out) and clear its cookie."""
    token = request.cookies.get(COOKIE)
    if token:
        name = token_hash(token)
        await console.transactions.write(lambda s: staff_sessions.end_session(s, name))
    response.del_cookie(COOKIE, path=PATH)
