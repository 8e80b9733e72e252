"""The inbox at /console/ (SPEC §16): a placeholder the inbox's own work replaces."""

from __future__ import annotations

from aiohttp import web

from service.console.auth import signed_in
from service.console.pages import render

routes = web.RouteTableDef()


@routes.get("/console/")
async def inbox(request: web.Request) -> web.Response:
    """The page after signing in."""
    return render(request, "inbox.html", {"account": signed_in(request)})


@routes.get("/console")
async def bare(_request: web.Request) -> web.Response:
    """/console without its slash: the inbox."""
    return web.Response(status=303, headers={"Location": "/console/"})
