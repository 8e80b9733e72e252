"""`setup(app)`: the console's routes, templates, static files, middleware and headers.

The app factory calls `setup(app)` once, then stores a `Console` under `CONSOLE` in a cleanup
context once the database is up (`deps.Console`)."""

from __future__ import annotations

import aiohttp_jinja2
import jinja2
from aiohttp import web

from service.console import guard, inbox, login, photos
from service.console import patient as patient_page
from service.console import search as patient_search
from service.console.pages import STATIC


def setup(app: web.Application) -> None:
    """Register the console on `app`: its guard runs inside every middleware `app` has."""
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("service.console", "templates"),
        autoescape=True,  # aiohttp-jinja2's default for .html, said out loud
        undefined=jinja2.StrictUndefined,
    )
    app.middlewares.append(guard.guard)
    app.on_response_prepare.append(guard.safe_headers)
    app.add_routes(login.routes)
    app.add_routes(inbox.routes)
    app.add_routes(patient_page.routes)  # the patient page and its search
    app.add_routes(patient_search.routes)
    app.add_routes(photos.routes)  # a photo's bytes, to the clinic's staff
    app.router.add_static("/console/static/", STATIC, name="console_static")
