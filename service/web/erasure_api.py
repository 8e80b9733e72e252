"""Erasing a patient through the API (contract §19): bearer tokens as the read API's."""

from __future__ import annotations

from aiohttp import web

from service.intake import erasure
from service.reads.erasures import ERASURE
from service.web.auth import authorize
from service.web.errors import answer
from service.web.keys import CLOCK, SETTINGS, TRANSACTIONS

routes = web.RouteTableDef()
ACTOR = "api"  # who the audit names: the clinic's system, never its token


@routes.post("/v1/clinics/{clinic_id}/patients/{patient_id}/erase")
async def erase_patient(request: web.Request) -> web.Response:
    """Erase the patient; 200 with what was erased, the same again on a repeat."""
    settings = request.app[SETTINGS]
    clinic_id = authorize(request, settings)
    done = await erasure.erase(
        request.app[TRANSACTIONS],
        settings,
        clinic_id,
        request.match_info["patient_id"],
        actor=ACTOR,
        now=request.app[CLOCK].now(),
    )
    return answer(ERASURE, done)
