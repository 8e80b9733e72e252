"""Patients' photos for clinic systems (contract §17): `GET /v1/clinics/{clinic_id}/media/{id}`.

Bearer tokens as the read API: the token is checked for the path's clinic first, so another
clinic's token is 403 and another clinic's photo is 404. A photo still being downloaded is
409 (`retry later`); one refused or failed, or pruned, is 404. The bytes are answered with
their stored type and `Cache-Control: no-store`: no proxy or browser keeps a copy.
"""

from __future__ import annotations

from aiohttp import web

from service.errors import Conflict, NotFound
from service.reads import media
from service.web.auth import authorize
from service.web.keys import SETTINGS, TRANSACTIONS

routes = web.RouteTableDef()


@routes.get("/v1/clinics/{clinic_id}/media/{media_id}")
async def get_media(request: web.Request) -> web.Response:
    """One photo's bytes (EXIF removed), as stored."""
    clinic_id = authorize(request, request.app[SETTINGS])
    media_id = request.match_info["media_id"]
    found = await request.app[TRANSACTIONS].read(lambda s: media.lookup(s, [clinic_id], media_id))
    if found == "pending":
        raise Conflict("the photo is still being downloaded from Twilio; retry later")
    if not isinstance(found, tuple):
        raise NotFound("no such photo of this clinic (unknown, not kept, or pruned)")
    content_type, data = found
    headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
    return web.Response(body=data, content_type=content_type, headers=headers)
