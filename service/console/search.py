"""Patient search (contract §16): `/console/patients?q=`, by first name, the clinic's patient id or
the last four digits, across the signed-in account's clinics (`reads.timeline.search`)."""

from __future__ import annotations

from aiohttp import web

from service.console.auth import signed_in
from service.console.deps import CONSOLE
from service.console.pages import render
from service.console.patient import page_url
from service.reads import timeline

routes = web.RouteTableDef()


@routes.get("/console/patients")
async def search(request: web.Request) -> web.Response:
    """The search form, and its results when `q` is given."""
    console, account = request.app[CONSOLE], signed_in(request)
    q = request.query.get("q", "").strip()[:100]
    ids = account.clinic_ids
    found = await console.transactions.read(lambda s: timeline.search(s, ids, q)) if q else []
    clinics = console.settings.clinics
    results = [
        {
            **f,
            "url": page_url(f["clinic_id"], f["patient_id"]),
            "clinic_name": clinics[f["clinic_id"]].name,
        }
        for f in found
    ]
    context = {
        "q": q,
        "results": results,
        "limit": timeline.SEARCH_LIMIT,
        "several_clinics": len(ids) > 1,
    }
    return render(request, "search.html", context)
