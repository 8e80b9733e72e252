"""The escalations API (contract §10): a clinic's escalations, and acknowledging one.

Bearer tokens as the read API (§8): the token is checked for the path's clinic first."""

from __future__ import annotations

import json

from aiohttp import web
from pydantic import ValidationError

from service.conversations import escalations
from service.errors import FieldError, Unprocessable, UnsupportedMediaType
from service.reads import escalations as listed
from service.reads.paging import parse_escalation_query
from service.web.auth import authorize
from service.web.errors import answer
from service.web.keys import CLOCK, SETTINGS, TRANSACTIONS

routes = web.RouteTableDef()


@routes.get("/v1/clinics/{clinic_id}/escalations")
async def list_escalations(request: web.Request) -> web.Response:
    """A page of the clinic's escalations (by state), newest first."""
    clinic_id = authorize(request, request.app[SETTINGS])
    query = parse_escalation_query(request.query)
    found = await request.app[TRANSACTIONS].read(lambda s: listed.page(s, clinic_id, query))
    return answer(listed.ESCALATIONS, found)


@routes.post("/v1/clinics/{clinic_id}/escalations/{escalation_id}/acknowledge")
async def acknowledge(request: web.Request) -> web.Response:
    """Acknowledge an escalation `{"by": "..."}`; 200 with it as it now stands."""
    clinic_id = authorize(request, request.app[SETTINGS])
    by = _by(await _json(request))
    escalation_id, now = request.match_info["escalation_id"], request.app[CLOCK].now()
    found = await request.app[TRANSACTIONS].write(
        lambda s: escalations.acknowledge(s, clinic_id, escalation_id, by=by, now=now)
    )
    return answer(listed.ESCALATION, found)


async def _json(request: web.Request) -> object:
    if request.content_type != "application/json":
        raise UnsupportedMediaType("send the acknowledgement as application/json")
    try:
        return json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        raise Unprocessable(
            "the body is not JSON", errors=[FieldError("body", "must be a JSON object")]
        ) from None


def _by(body: object) -> str:
    try:
        return listed.ACKNOWLEDGE.validate_python(body).by
    except ValidationError:
        raise Unprocessable(
            "the acknowledgement needs who gives it",
            errors=[FieldError("by", "a name or id of 1 to 100 characters")],
        ) from None
