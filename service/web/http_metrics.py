"""HTTP requests by route, method and status, counted and timed (contract §14, Operations).

The route is the matched resource's canonical path (`/v1/clinics/{clinic_id}/events`), never
the raw path, so that one series per route exists however many clinics and patients there
are; a request no resource matches (404, 405) is `unmatched`. The middleware sits outside
the problem+json one, so it records the status the client got; the time runs until the
handler's answer is ready (a streamed body's writing is not in it).
"""

from __future__ import annotations

import functools
import time

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler
from prometheus_client import Histogram

from service.web.keys import METRICS

UNMATCHED = "unmatched"
OTHER_METHOD = "other"  # a client can send any token as its method: not a label value each
SERIES_KEPT = 1024  # label children looked up once each (of routes, methods and statuses)


@web.middleware
async def http_metrics(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Observe each request's duration under its route, method and final status."""
    started = time.perf_counter()
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # redirects: the error middleware lets them through
        _observe(request, exc.status, started)
        raise
    except Exception:  # escaped the error middleware: aiohttp answers 500
        _observe(request, 500, started)
        raise
    _observe(request, response.status, started)
    return response


def _observe(request: web.Request, status: int, started: float) -> None:
    method = request.method if request.method in hdrs.METH_ALL else OTHER_METHOD
    _series(request.app[METRICS].http_seconds, route_of(request), method, status).observe(
        time.perf_counter() - started
    )


@functools.lru_cache(maxsize=SERIES_KEPT)
def _series(histogram: Histogram, route: str, method: str, status: int) -> Histogram:
    """The histogram's child for these labels, looked up once (`labels()` checks and locks
    on every call; routes, methods and statuses are few: docs/benchmarks.md)."""
    return histogram.labels(route=route, method=method, status=str(status))


def route_of(request: web.Request) -> str:
    """The canonical path of the resource that matched `request`, or `unmatched`."""
    resource = request.match_info.route.resource
    return UNMATCHED if resource is None else resource.canonical
