"""Twilio's webhooks: delivery status and patients' replies (contract §7).

Both verify `X-Twilio-Signature` against `public_base_url` + path (never X-Forwarded-*);
a bad or missing signature answers 403 and changes nothing.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

from aiohttp import web

from service.delivery import replies
from service.delivery.callbacks import error_code
from service.errors import Forbidden, UnsupportedMediaType
from service.web.keys import PHOTOS, RETURN_PATH, SETTINGS, TIMERS
from service.web.twilio_signature import for_token

routes = web.RouteTableDef()
TWIML = "application/xml"
FORM = "application/x-www-form-urlencoded"


async def _verified_form(request: web.Request) -> dict[str, str]:
    settings = request.app[SETTINGS]
    if request.content_type != FORM:
        raise UnsupportedMediaType(f"Twilio posts {FORM}")
    form = {k: str(v) for k, v in (await request.post()).items()}
    url = settings.server.public_base_url + request.rel_url.path_qs
    signature = request.headers.get("X-Twilio-Signature", "")
    token = settings.twilio.auth_token.get_secret_value()
    if not token or not signature or not for_token(token).valid(url, form, signature):
        raise Forbidden("missing or invalid X-Twilio-Signature")
    return form


@routes.post("/v1/twilio/status")
async def status_callback(request: web.Request) -> web.Response:
    """Apply a delivery status; forward moves only, repeats harmless, unknown sids ignored.
    Answered once the callback is durable (written with those arriving beside it)."""
    form = await _verified_form(request)
    await request.app[RETURN_PATH].status(
        sid=form.get("MessageSid", ""),
        status=form.get("MessageStatus", ""),
        code=error_code(form.get("ErrorCode", "")),
    )
    return web.Response(status=200, text="")


@routes.post("/v1/twilio/inbound")
async def inbound_message(request: web.Request) -> web.Response:
    """STOP / START / HELP (of all or of one word's kinds), ACK, replies to check-ins and
    other text; answers TwiML. Twilio's retry of a text (its MessageSid) gets the first answer
    and changes nothing; a From that is no number is answered empty and kept nowhere."""
    form = await _verified_form(request)
    settings = request.app[SETTINGS]
    try:
        reply = replies.from_form(form)
    except replies.Unreadable as refused:  # answered, so that Twilio does not retry it
        request.app[RETURN_PATH].refuse(refused.reason, sender=form.get("From", ""))
        return web.Response(text=_twiml(None), content_type=TWIML)
    handled = await request.app[RETURN_PATH].reply(reply)
    request.app[TIMERS].arm_many(handled.due)  # the alerts of an escalation, due now
    if reply.media:
        request.app[PHOTOS].wake()  # downloaded beside, never inside, this request
    answer = handled.answer if settings.sms.reply_to_keywords else None
    return web.Response(text=_twiml(answer), content_type=TWIML)


def _twiml(text: str | None) -> str:
    if not text:
        return '<?xml version="1.0" encoding="UTF-8"?><Response/>'
    return (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Message>'
        f"{escape(text)}</Message></Response>"
    )
