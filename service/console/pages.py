"""Rendering console pages with the base layout (templates/base.html).

A page handler returns `render(request, "page.html", {...})`: the layout gets the signed-in
account (`staff`), its clinics' names (`clinics`) and the CSRF token (`csrf`) by itself, so a
POST form in a page carries `<input type="hidden" name="csrf" value="{{ csrf }}">` and its
handler gets the CSRF check for free (the guard, before the handler runs). `scripts` names
files of /console/static/ to load (no inline script: the Content-Security-Policy forbids it).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from service.console.auth import SESSION
from service.console.deps import CONSOLE

STATIC = Path(__file__).parent / "static"
_SCRIPT = re.compile(r"^[a-z0-9_-]+\.js$")


def render(
    request: web.Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status: int = 200,
    scripts: tuple[str, ...] = (),
) -> web.Response:
    """`template` rendered in the base layout, with the account, its clinics and CSRF token."""
    for name in scripts:
        if not _SCRIPT.match(name) or not (STATIC / name).is_file():
            raise ValueError(f"not a script of /console/static/: {name!r}")
    session = request.get(SESSION)
    settings = request.app[CONSOLE].settings
    clinics = [settings.clinics[c].name for c in session.clinic_ids] if session else []
    base = {"staff": session, "clinics": clinics, "csrf": session.csrf if session else ""}
    page = {**base, "scripts": scripts, **(context or {})}
    return aiohttp_jinja2.render_template(template, request, page, status=status)


def error_page(request: web.Request, status: int) -> web.Response:
    """The console's HTML page for an error status (404, 403, 405, ...)."""
    titles = {403: "Not allowed", 404: "Page not found", 405: "Not allowed"}
    title = titles.get(status, "Something went wrong")
    return render(request, "error.html", {"title": title, "status": status}, status=status)
