"""The inbox at /console/ (contract §16): what needs a person, newest first, with `Acknowledge` and
`Mark done` as plain POST forms (they work without JavaScript), and the two cheap endpoints
static/inbox.js polls to show a new item without a reload:

- GET /console/inbox/version: `{"version": …}`, `reads.inbox.inbox_version` (~20 ms);
- GET /console/inbox/items: the list as an HTML fragment, the same partial the page includes.

Requests of the script carry `X-Console-Poll` so that they do not keep the session alive
(the guard's idle timeout still ends an unattended session; the page then shows sign-in).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from aiohttp import web

from service.console.auth import signed_in
from service.console.deps import CONSOLE
from service.console.inbox_view import NOTICES, reply_id, view
from service.console.pages import render
from service.conversations import inbox_actions
from service.errors import NotFound
from service.reads import inbox as inbox_reads
from service.reads import media as media_reads
from service.reads.media import MediaView

routes = web.RouteTableDef()
INBOX = "/console/"
ID_LENGTH = 64  # longer ids name nothing (row ids are far shorter)


@routes.get(INBOX)
async def inbox(request: web.Request) -> web.Response:
    """The page after signing in: the list, and a confirmation after an action."""
    context = await _list(request)
    context["notice"] = NOTICES.get(request.query.get("done", ""))
    return render(request, "inbox.html", context, scripts=("inbox.js",))


@routes.get("/console")
async def bare(_request: web.Request) -> web.Response:
    """/console without its slash: the inbox."""
    return web.Response(status=303, headers={"Location": INBOX})


@routes.get("/console/inbox/version")
async def version(request: web.Request) -> web.Response:
    """The inbox's version: it changes whenever an item arrives or leaves."""
    clinic_ids = signed_in(request).clinic_ids
    found = await request.app[CONSOLE].transactions.read(lambda s: _version(s, clinic_ids))
    return web.json_response({"version": found})


def _version(s: Any, clinic_ids: Collection[str]) -> str:
    """The inbox's version, and how many photos are still arriving: a photo stored (or
    failed) after its reply showed changes the version, so the page swaps in its thumbnail."""
    arriving = media_reads.arriving(s, clinic_ids)
    return f"{inbox_reads.inbox_version(s, clinic_ids)}-{arriving}"


@routes.get("/console/inbox/items")
async def items(request: web.Request) -> web.Response:
    """The list alone, as the page shows it (the script swaps it in)."""
    return render(request, "_inbox_items.html", await _list(request))


async def _list(request: web.Request) -> dict[str, Any]:
    console, clinic_ids = request.app[CONSOLE], signed_in(request).clinic_ids
    now = console.clock.now()

    def read(s: Any) -> tuple[list[inbox_reads.InboxItem], dict[int, list[MediaView]], str]:
        found = inbox_reads.items(s, clinic_ids, now=now)
        replies = [i for i in map(reply_id, found) if i is not None]
        return found, media_reads.media_of_replies(s, replies), _version(s, clinic_ids)

    found, media, current = await console.transactions.read(read)
    names = {c: console.settings.clinics[c].name for c in clinic_ids}
    views = [view(item, clinic_names=names, media=media) for item in found]
    return {"items": views, "version": current, "several_clinics": len(clinic_ids) > 1}


@routes.post("/console/inbox/acknowledge")
async def acknowledge(request: web.Request) -> web.Response:
    """`Acknowledge`: as ACK by SMS, by the signed-in email; back to the inbox."""
    escalation_id = await _field(request, "escalation")
    session, console = signed_in(request), request.app[CONSOLE]
    now = console.clock.now()
    try:
        found = await console.transactions.write(
            lambda s: inbox_actions.acknowledge(
                s, session.clinic_ids, escalation_id, by=session.email, now=now
            )
        )
    except NotFound:
        raise web.HTTPNotFound() from None
    mine = found["acknowledged_by"] == session.email  # else someone (or ACK) was first
    raise web.HTTPSeeOther(f"{INBOX}?done={'acknowledged' if mine else 'already'}")


@routes.post("/console/inbox/done")
async def mark_done(request: web.Request) -> web.Response:
    """`Mark done`: the item leaves the inbox (an escalation is acknowledged too)."""
    item_id = await _field(request, "item")
    session, console = signed_in(request), request.app[CONSOLE]
    now = console.clock.now()
    try:
        done = await console.transactions.write(
            lambda s: inbox_actions.mark_done(
                s, session.clinic_ids, item_id, by=session.email, now=now
            )
        )
    except NotFound:
        raise web.HTTPNotFound() from None
    raise web.HTTPSeeOther(f"{INBOX}?done={'already' if done.already else 'done'}")


async def _field(request: web.Request, name: str) -> str:
    """A form's id field; 404 when missing or too long to name anything."""
    value = (await request.post()).get(name, "")
    if not isinstance(value, str) or not value or len(value) > ID_LENGTH:
        raise web.HTTPNotFound()
    return value
