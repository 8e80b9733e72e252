"""`POST /v1/clinics/{clinic_id}/events`: verify, then hand the raw body to the ingest use case.

Order of checks: clinic, content type, size, signature on the raw bytes, then the schema.
Nothing is stored until all of them pass.
"""

from __future__ import annotations

from aiohttp import web
from standardwebhooks import Webhook, WebhookVerificationError

from service.config import ClinicSettings
from service.errors import PayloadTooLarge, ProblemError, Unauthorized, UnsupportedMediaType
from service.intake.series import EventAnswer
from service.web.keys import INGEST, METRICS, SETTINGS, TIMERS

routes = web.RouteTableDef()
SIGNATURE_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


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
    clinic_id = request.match_info["clinic_id"]
    clinic = request.app[SETTINGS].clinics.get(clinic_id)
    if clinic is None:
        raise Unauthorized("unknown clinic or invalid signature")
    if request.content_type != "application/json":
        raise UnsupportedMediaType("events must be sent as application/json")
    raw = await _read_body(request)
    headers = _verify(clinic, request, raw)
    reply = await request.app[INGEST].handle(clinic_id, headers["webhook-id"], raw)
    request.app[TIMERS].arm_many(due_at for _, due_at in reply.due)
    return reply, web.Response(
        status=reply.status, text=reply.body, content_type="application/json"
    )


async def _read_body(request: web.Request) -> bytes:
    limit = request.app[SETTINGS].server.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"the body is over {limit} bytes")
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(f"the body is over {limit} bytes") from None


def _verify(clinic: ClinicSettings, request: web.Request, raw: bytes) -> dict[str, str]:
    """The Standard Webhooks headers, if any of the clinic's secrets signed `raw`."""
    headers = {name: request.headers.get(name, "") for name in SIGNATURE_HEADERS}
    if not all(headers.values()):
        raise Unauthorized("missing webhook-id, webhook-timestamp or webhook-signature")
    if len(headers["webhook-id"]) > 255:
        raise Unauthorized("webhook-id is too long")
    for secret in clinic.webhook_secrets:
        try:
            Webhook(secret.get_secret_value()).verify(raw, headers, json_parse=False)
        except (WebhookVerificationError, ValueError, TypeError, OverflowError):
            continue
        return headers
    raise Unauthorized("unknown clinic or invalid signature, or a stale timestamp")
