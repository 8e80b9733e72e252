"""The read API for clinic systems (SPEC §8)."""

from __future__ import annotations

from aiohttp import web

from service import store
from service.errors import NotFound
from service.models import Patient
from service.views import message_view, treatment_view
from service.web.auth import authorize
from service.web.keys import SESSIONS, SETTINGS

routes = web.RouteTableDef()


@routes.get("/v1/clinics/{clinic_id}/treatments/{treatment_id}")
async def get_treatment(request: web.Request) -> web.Response:
    """The treatment and its messages, each with its history."""
    clinic_id = authorize(request, request.app[SETTINGS])
    async with request.app[SESSIONS]() as s:
        treatment = await store.find_treatment(s, clinic_id, request.match_info["treatment_id"])
        if treatment is None or treatment.id is None:
            raise NotFound("this clinic has no treatment with that id")
        patient = await s.get(Patient, treatment.patient_id)
        assert patient is not None
        messages = await store.messages_of(s, treatment.id)
        history = await store.history_of(s, [m.id for m in messages])
    return web.json_response({
        "treatment": treatment_view(treatment, patient),
        "messages": [message_view(m, history[m.id]) for m in messages],
    })
