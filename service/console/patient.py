"""The patient page (contract §16): `/console/clinics/{clinic_id}/patients/{patient_id}`.

GET shows the patient (first name, last four digits, consent and opt-outs) and their whole
timeline in their local time, audited `patient_viewed`. `Show number` is a POST that answers
the same page with the whole number in it (audited `number_revealed`; never in a URL, never
cached: every console page is `no-store`). `Send` posts a staff text once per rendered form
(its hidden one-time token: `conversations.staff_text_requests`), then 303 back to the page,
whose `?sent=<token>` says "Sent" or when it will be.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from urllib.parse import quote

from aiohttp import web

from service.console.auth import require_clinic, signed_in
from service.console.deps import CONSOLE
from service.console.pages import render
from service.console.photos import photo_views
from service.conversations import inbox_actions
from service.conversations.staff_text_requests import FormUsedElsewhere, Sent, send_once, sent_by
from service.conversations.staff_texts import StaffTextRefused
from service.errors import NotFound, Unprocessable
from service.planning.timing import zone
from service.reads.timeline import Timeline
from service.storage.transactions import Session

routes = web.RouteTableDef()
PAGE = "/console/clinics/{clinic_id}/patients/{patient_id}"
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def page_url(clinic_id: str, patient_id: str) -> str:
    """The patient page's path (ids quoted)."""
    return f"/console/clinics/{quote(clinic_id, safe='')}/patients/{quote(patient_id, safe='')}"


def _ids(request: web.Request) -> tuple[str, str]:
    """The clinic and patient of the path, the clinic checked to be the account's."""
    clinic_id, patient_id = request.match_info["clinic_id"], request.match_info["patient_id"]
    require_clinic(request, clinic_id)
    return clinic_id, patient_id


@routes.get(PAGE)
async def patient(request: web.Request) -> web.Response:
    """The patient page; `?sent=<token>` adds what the form of that token sent."""
    clinic_id, patient_id = _ids(request)
    token = request.query.get("sent", "")
    sent = None
    if _TOKEN.match(token):
        console = request.app[CONSOLE]
        try:
            sent = await sent_by(
                console.transactions, token, clinic_id=clinic_id, patient_id=patient_id
            )
        except FormUsedElsewhere:
            sent = None
    return await _page(request, sent=sent)


@routes.post(PAGE + "/number")
async def show_number(request: web.Request) -> web.Response:
    """`Show number`: the page again, with the whole number (audited)."""
    _ids(request)
    return await _page(request, reveal=True)


@routes.post(PAGE + "/messages")
async def send(request: web.Request) -> web.Response:
    """`Send`: the staff text once per form, then 303 to the page; a refusal or a form error
    is the page again with the reason (and the text typed kept)."""
    clinic_id, patient_id = _ids(request)
    form = await request.post()
    body, token = str(form.get("message", "")), str(form.get("request", ""))
    anyway = form.get("send_anyway") == "yes"
    if not _TOKEN.match(token):
        raise web.HTTPBadRequest()
    typed = {"message": body, "send_anyway": anyway}
    try:
        await _send(
            request,
            token=token,
            body=body,
            anyway=anyway,
            clinic_id=clinic_id,
            patient_id=patient_id,
        )
    except NotFound:
        raise web.HTTPNotFound() from None
    except Unprocessable as exc:
        errors = {e.field: e.message for e in exc.errors}
        return await _page(request, status=422, typed=typed, errors=errors)
    except (StaffTextRefused, FormUsedElsewhere) as exc:
        return await _page(request, status=409, typed=typed, refusal=exc.detail)
    raise web.HTTPSeeOther(f"{page_url(clinic_id, patient_id)}?sent={token}")


async def _send(
    request: web.Request,
    *,
    token: str,
    body: str,
    anyway: bool,
    clinic_id: str,
    patient_id: str,
) -> Sent:
    console = request.app[CONSOLE]

    def arm(times: Iterable[datetime]) -> None:
        for at in times:
            console.arm(at)

    return await send_once(
        token=token,
        settings=console.settings,
        transactions=console.transactions,
        arm=arm,
        clinic_id=clinic_id,
        patient_id=patient_id,
        body=body,
        staff_email=signed_in(request).email,
        send_anyway=anyway,
        now=console.clock.now(),
    )


async def _page(
    request: web.Request,
    *,
    status: int = 200,
    reveal: bool = False,
    sent: Sent | None = None,
    typed: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    refusal: str | None = None,
) -> web.Response:
    """The patient page, its viewing audited (and the number's showing, if `reveal`)."""
    console, (clinic_id, patient_id) = request.app[CONSOLE], _ids(request)
    found, number = await _load(request, clinic_id, patient_id, reveal=reveal)
    context = {
        "patient": found["patient"],
        "entries": _with_photos(found, clinic_id),
        "clinic_name": console.settings.clinics[clinic_id].name,
        "url": page_url(clinic_id, patient_id),
        "number": number,
        "confirmation": _confirmation(sent, found["patient"]["timezone"]),
        "form_token": secrets.token_urlsafe(24),
        "typed": typed or {"message": "", "send_anyway": False},
        "message_error": (errors or {}).get("message"),
        "refusal": refusal,
    }
    return render(request, "patient.html", context, status=status)


def _with_photos(found: Timeline, clinic_id: str) -> list[dict[str, Any]]:
    """The entries, each with its photos as the template shows them."""
    who = found["patient"]["first_name"]
    return [{**e, "photos": photo_views(clinic_id, e["media"], who=who)} for e in found["entries"]]


async def _load(
    request: web.Request, clinic_id: str, patient_id: str, *, reveal: bool
) -> tuple[Timeline, str | None]:
    """The timeline (audited `patient_viewed`) and, if `reveal`, the whole number (audited
    `number_revealed`), in one transaction; 404 for a patient the account may not see."""
    console, account = request.app[CONSOLE], signed_in(request)
    now, ids, by = console.clock.now(), account.clinic_ids, account.email

    def work(s: Session) -> tuple[Timeline, str | None]:
        found = inbox_actions.view_patient(s, ids, clinic_id, patient_id, by=by, now=now)
        if not reveal:
            return found, None
        return found, inbox_actions.reveal_number(s, ids, clinic_id, patient_id, by=by, now=now)

    try:
        return await console.transactions.write(work)
    except NotFound:
        raise web.HTTPNotFound() from None


def _confirmation(sent: Sent | None, timezone: str) -> str | None:
    """What the page says of a text the form sent: "Sent", or when quiet hours let it go."""
    if sent is None:
        return None
    if not sent.held:
        return "Sent"
    try:
        local = sent.send_at.astimezone(zone(timezone))
    except ValueError:  # a zone stored before it was checked: the timeline shows UTC too
        return f"Will be sent at {sent.send_at:%H:%M} (UTC), after their quiet hours"
    return f"Will be sent at {local:%H:%M} (their time), after their quiet hours"
