"""`POST /v1/clinics/{clinic_id}/events`: verify, then hand the raw body to the ingest use case.

Order of checks: size and time (service.web.edge), the signature headers' presence, the clinic
and the signature on the raw bytes (one identical 401 for an unknown clinic and a bad or stale
signature, so clinic ids cannot be told from outside), the content type, the clinic's
rate_limit (429), then the schema. Nothing is stored until all of them pass.
"""

from __future__ import annotations

import base64
import secrets

from aiohttp import web
from pydantic import SecretStr
from standardwebhooks import Webhook, WebhookVerificationError

from service.config import ClinicSettings
from service.errors import ProblemError, TooManyRequests, Unauthorized, UnsupportedMediaType
from service.intake.series import EventAnswer
from service.web.keys import INGEST, METRICS, RATE_LIMITS, SETTINGS, TIMERS

routes = web.RouteTableDef()
SIGNATURE_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
REFUSED = "unknown clinic, or no secret of the clinic signed this body within 5 minutes"


@routes.post("/v1/clinics/{clinic_id}/events")
async def post_event(request: web.Request) -> web.Response:
    """Accept a signed clinic event; 202 with the plan, 200 for a replay."""
    events = request.app[METRICS].events
    try:
        outcome = await _handle(request)
    except ProblemError as exc:
        events.labels("unknown", f"rejected_{exc.status}").inc()
        raise
    reply, response = outcome
    events.labels(reply.type, "accepted" if reply.status == 202 else "replayed").inc()
    return response


async def _handle(request: web.Request) -> tuple[EventAnswer, web.Response]:
    # Size and time were bounded by the edge middleware before this runs; then whatever does
    # not depend on the clinic, then the clinic and its signature as one check, and only then
    # the content type: what a caller without a secret learns is the same for every path.
    clinic_id = request.match_info["clinic_id"]
    headers = _signature_headers(request)
    raw = await request.read()  # already read whole (service.web.edge)
    clinic = request.app[SETTINGS].clinics.get(clinic_id)
    _verify(clinic, headers, raw)
    if request.content_type != "application/json":
        raise UnsupportedMediaType("events must be sent as application/json")
    retry_after = request.app[RATE_LIMITS].admit(clinic_id)
    if retry_after:
        raise TooManyRequests(
            "over the clinic's rate_limit; nothing was stored, retry later",
            retry_after=retry_after,
        )
    reply = await request.app[INGEST].handle(clinic_id, headers["webhook-id"], raw)
    request.app[TIMERS].arm_many(due_at for _, due_at in reply.due)
    return reply, web.Response(
        status=reply.status, text=reply.body, content_type="application/json"
    )


def _signature_headers(request: web.Request) -> dict[str, str]:
    """The Standard Webhooks headers, present and sane (the same answer for every clinic)."""
    headers = {name: request.headers.get(name, "") for name in SIGNATURE_HEADERS}
    if not all(headers.values()):
        raise Unauthorized("missing webhook-id, webhook-timestamp or webhook-signature")
    if len(headers["webhook-id"]) > 255:
        raise Unauthorized("webhook-id is too long")
    return headers


# An unknown clinic is verified against a secret nobody has, so that it costs what a known
# clinic's bad signature costs and answers the very same.
_DECOY = [SecretStr("whsec_" + base64.b64encode(secrets.token_bytes(32)).decode())]


def _verify(clinic: ClinicSettings | None, headers: dict[str, str], raw: bytes) -> None:
    """Return if any of the clinic's secrets signed `raw`; else one 401 for every reason."""
    for secret in _DECOY if clinic is None else clinic.webhook_secrets:
        try:
            Webhook(secret.get_secret_value()).verify(raw, headers, json_parse=False)
        except (WebhookVerificationError, ValueError, TypeError, OverflowError):
            continue
        if clinic is not None:
            return
    raise Unauthorized(REFUSED)
