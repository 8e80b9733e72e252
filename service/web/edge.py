"""What every request meets before a handler (contract §14, "The edge"; docs/edge.md).

- A body is read whole before any handler runs, bounded twice: by `server.max_body_bytes`
  (413; a `Content-Length` over it is refused unread) and by `server.body_timeout` counted
  from the request's headers (408, then the connection is closed). A client that trickles a
  body holds a connection no longer than that; its cut is a 4xx of its own making, never an
  ERROR line or a 5xx. Handlers then read the cached bytes (`request.read()`,
  `request.post()` for forms). A multipart handler would need the stream: none exists.
- No `Server` header names the versions of Python and aiohttp.
"""

from __future__ import annotations

import asyncio

from aiohttp import web, web_response
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler

from service.errors import BodyCutShort, PayloadTooLarge, RequestTimeout
from service.web.keys import SETTINGS

SERVER = "aftercare"


@web.middleware
async def bodies(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Read the body whole, in time and in size, before the handler runs."""
    if request.body_exists:
        await _read_whole(request)
    return await handler(request)


async def _read_whole(request: web.Request) -> None:
    server = request.app[SETTINGS].server
    limit, seconds = server.max_body_bytes, server.body_timeout.total_seconds()
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"the body is over {limit} bytes")
    # The handler's task starts as soon as the headers are parsed: the deadline counts from
    # them. aiohttp itself never times out a body. A body that came whole with its headers
    # (a webhook's form, most JSON events) has nothing to wait for: no timer for it, a cost
    # on every status callback (docs/benchmarks.md).
    try:
        if request.content.is_eof():
            await request.read()
        else:
            async with asyncio.timeout(seconds):
                await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(f"the body is over {limit} bytes") from None
    except TimeoutError:
        raise RequestTimeout(f"the body did not arrive within {seconds:g}s") from None
    except (ConnectionError, HttpProcessingError):
        # The client closed the connection mid-body, or broke its chunked framing: nobody
        # may be left to answer, and it is no fault of the service.
        raise BodyCutShort("the body was cut short") from None


async def server_header(_request: web.Request, response: web.StreamResponse) -> None:
    """Name the service, not the versions of what it runs on (on_response_prepare)."""
    response.headers["Server"] = SERVER


def hide_server_versions() -> None:
    """aiohttp's own answers, made before the app runs (a request it cannot parse: 400), take
    their `Server` header from this module global; the app's answers get `server_header`."""
    web_response.SERVER_SOFTWARE = SERVER  # type: ignore[attr-defined]  # checked by a test
