"""The read and cancel API for clinic systems (contract §8).

Each handler authorizes the bearer token for the path's clinic (401/403) before anything
else, then calls one use case scoped to that clinic, so another clinic's id is a 404.
"""

from __future__ import annotations

from aiohttp import web

from service.intake import cancellations
from service.reads import appointments, lookups
from service.reads.answers import APPOINTMENT, PAGE, TREATMENT
from service.reads.paging import parse_query
from service.web.auth import authorize
from service.web.errors import answer
from service.web.keys import CLOCK, SETTINGS, TRANSACTIONS

routes = web.RouteTableDef()


@routes.get("/v1/clinics/{clinic_id}/treatments/{treatment_id}")
async def get_treatment(request: web.Request) -> web.Response:
    """The treatment and its messages, each with its history."""
    clinic_id = authorize(request, request.app[SETTINGS])
    found = await lookups.treatment(
        request.app[TRANSACTIONS], clinic_id, request.match_info["treatment_id"]
    )
    return answer(TREATMENT, found)


@routes.post("/v1/clinics/{clinic_id}/treatments/{treatment_id}/cancel")
async def cancel_treatment(request: web.Request) -> web.Response:
    """Cancel the treatment's scheduled messages; 200 with the treatment as it now stands."""
    clinic_id = authorize(request, request.app[SETTINGS])
    found = await cancellations.cancel_from_api(
        request.app[TRANSACTIONS],
        clinic_id,
        request.match_info["treatment_id"],
        now=request.app[CLOCK].now(),
    )
    return answer(TREATMENT, found)


@routes.get("/v1/clinics/{clinic_id}/appointments/{appointment_id}")
async def get_appointment(request: web.Request) -> web.Response:
    """The appointment and the messages it planned, each with its history."""
    clinic_id = authorize(request, request.app[SETTINGS])
    external_id = request.match_info["appointment_id"]
    found = await request.app[TRANSACTIONS].read(
        lambda s: appointments.appointment(s, clinic_id, external_id)
    )
    return answer(APPOINTMENT, found)


@routes.get("/v1/clinics/{clinic_id}/patients/{patient_id}/messages")
async def patient_messages(request: web.Request) -> web.Response:
    """A page of the patient's messages, newest first, each with its history."""
    clinic_id = authorize(request, request.app[SETTINGS])
    page = parse_query(request.query)
    found = await lookups.patient_messages(
        request.app[TRANSACTIONS], clinic_id, request.match_info["patient_id"], page
    )
    return answer(PAGE, found)


@routes.get("/v1/clinics/{clinic_id}/messages")
async def clinic_messages(request: web.Request) -> web.Response:
    """A page of the clinic's messages (by status, send_at window), newest first."""
    clinic_id = authorize(request, request.app[SETTINGS])
    page = parse_query(request.query)
    return answer(PAGE, await lookups.clinic_messages(request.app[TRANSACTIONS], clinic_id, page))
