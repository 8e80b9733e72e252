"""The audit API for clinic systems (contract §16): the clinic's audit trail, newest first.

Bearer tokens as the read API (§8): the path's clinic is authorized before anything else, and
the query names it, so another clinic's rows are never listed."""

from __future__ import annotations

from aiohttp import web

from service.reads import audit
from service.reads.paging import parse_audit_query
from service.web.auth import authorize
from service.web.errors import answer
from service.web.keys import SETTINGS, TRANSACTIONS

routes = web.RouteTableDef()


@routes.get("/v1/clinics/{clinic_id}/audit")
async def list_audit(request: web.Request) -> web.Response:
    """A page of the clinic's audit rows, newest first (`limit` ≤ 200, opaque `cursor`)."""
    clinic_id = authorize(request, request.app[SETTINGS])
    query = parse_audit_query(request.query)
    found = await request.app[TRANSACTIONS].read(lambda s: audit.page(s, clinic_id, query))
    return answer(audit.AUDIT_PAGE, found)
