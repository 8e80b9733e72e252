"""The notifications API for clinic systems (contract §11): what was sent them, and a retry.

Bearer tokens as the read API (§8): the path's clinic is authorized before anything else, and
every query names it, so another clinic's notification is a 404.
"""

from __future__ import annotations

from aiohttp import web

from service.notifications.retry import retry
from service.reads import notifications
from service.reads.answers import NOTIFICATION, NOTIFICATIONS
from service.reads.paging import parse_notification_query
from service.web.auth import authorize
from service.web.errors import answer
from service.web.keys import CLOCK, DELIVERER, SETTINGS, TRANSACTIONS

routes = web.RouteTableDef()


@routes.get("/v1/clinics/{clinic_id}/notifications")
async def list_notifications(request: web.Request) -> web.Response:
    """A page of the clinic's notifications (of one state), newest first, with attempts."""
    clinic_id = authorize(request, request.app[SETTINGS])
    query = parse_notification_query(request.query)
    found = await request.app[TRANSACTIONS].read(lambda s: notifications.page(s, clinic_id, query))
    return answer(NOTIFICATIONS, found)


@routes.post("/v1/clinics/{clinic_id}/notifications/{notification_id}/retry")
async def retry_notification(request: web.Request) -> web.Response:
    """A failed (or pending) notification due now; 409 for a delivered one."""
    clinic_id = authorize(request, request.app[SETTINGS])
    notification_id = request.match_info["notification_id"]
    transactions = request.app[TRANSACTIONS]
    await retry(
        transactions,
        request.app[SETTINGS],
        clinic_id,
        notification_id,
        now=request.app[CLOCK].now(),
    )
    request.app[DELIVERER].wake()
    found = await transactions.read(lambda s: notifications.one(s, clinic_id, notification_id))
    return answer(NOTIFICATION, found)
