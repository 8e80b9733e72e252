"""Bearer tokens for the read API (contract §8), compared in constant time."""

from __future__ import annotations

import hmac

from aiohttp import web

from service.config import Settings
from service.errors import Forbidden, Unauthorized


def authorize(request: web.Request, settings: Settings) -> str:
    """The clinic id of the path, if the bearer token is one of that clinic's; else 401/403."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("send Authorization: Bearer <one of the clinic's api_tokens>")
    owner = _owner(settings, token.strip())
    if owner is None:
        raise Unauthorized("the bearer token is not valid")
    clinic_id = request.match_info["clinic_id"]
    if owner != clinic_id:
        raise Forbidden("this token does not give access to that clinic")
    return clinic_id


def _owner(settings: Settings, token: str) -> str | None:
    """The clinic owning `token`; every token is compared, so timing tells nothing."""
    owner = None
    given = token.encode()
    for clinic_id, clinic in settings.clinics.items():
        for candidate in clinic.api_tokens:
            if hmac.compare_digest(given, candidate.get_secret_value().encode()):
                owner = clinic_id
    return owner
