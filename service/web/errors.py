"""One middleware maps the exception tree to RFC 9457 problem+json; nothing else renders errors."""

from __future__ import annotations

import itertools
import logging
import re
import secrets
from typing import TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import TypeAdapter

from service.errors import ProblemError
from service.observability.logs import REQUEST_ID
from service.reads.answers import PROBLEM as PROBLEM_ANSWER
from service.reads.answers import FieldProblem, Problem

log = logging.getLogger("aftercare.web")
PROBLEM = "application/problem+json"
T = TypeVar("T")


def answer(
    adapter: TypeAdapter[T],
    value: T,
    *,
    status: int = 200,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> web.Response:
    """A JSON response rendered by the adapter that describes it in the OpenAPI document."""
    return web.Response(
        status=status, body=adapter.dump_json(value), content_type=content_type, headers=headers
    )


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    errors: list[FieldProblem] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """An RFC 9457 problem response."""
    body: Problem = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if errors is not None:
        body["errors"] = errors
    return answer(PROBLEM_ANSWER, body, status=status, content_type=PROBLEM, headers=headers)


_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# Made-up ids: random per process, then counted (32 hex digits, like a UUID's). uuid4() read
# the system's random source for every request, a visible share of the event loop's time
# once Twilio's status callbacks came in (docs/benchmarks.md).
_ID_PREFIX = secrets.token_hex(8)
_ID_COUNTER = itertools.count(1)


def new_request_id() -> str:
    """An id no other request of any process is likely to have."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


@web.middleware
async def request_ids(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Tag every log line of a request with its id (the caller's X-Request-Id, if sane)."""
    given = request.headers.get("X-Request-Id", "")
    request_id = given if _REQUEST_ID.match(given) else new_request_id()
    # Not reset afterwards: aiohttp writes the access log line after the middlewares return,
    # in the same task, and the next request on the connection sets its own id.
    REQUEST_ID.set(request_id)
    response = await handler(request)
    response.headers["X-Request-Id"] = request_id
    return response


@web.middleware
async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render refusals and aiohttp's own HTTP errors as problem+json; hide bugs' details."""
    try:
        return await handler(request)
    except ProblemError as exc:
        errors: list[FieldProblem] = [{"field": e.field, "message": e.message} for e in exc.errors]
        response = problem(
            exc.status,
            exc.title,
            exc.detail,
            errors=errors if exc.status == 422 else None,
            headers=exc.headers() or None,
        )
        if exc.closes:
            response.force_close()
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return problem(exc.status, exc.reason, exc.text or exc.reason, headers=headers)
    except Exception:
        log.exception("unhandled error", extra={"path": request.path})
        return problem(500, "Internal server error", "the service failed; it has been logged")
