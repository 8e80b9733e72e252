"""`serve`'s listener: aiohttp's AppRunner behind a protocol factory that keeps at most
`server.max_connections` connections open (contract §14, "The edge"; docs/edge.md).

aiohttp accepts every connection and has no cap of its own (aio-libs/aiohttp#675: "application
level duty"), and `web.run_app` builds its listener where nothing can wrap it. So this runs
what `run_app` runs, through public APIs: an `AppRunner` (its signal handling: SIGTERM and
SIGINT end the loop gracefully), `loop.create_server` with the runner's own protocol factory
wrapped, and `runner.cleanup()` on the way out. A connection beyond the cap is closed at once,
unread and unanswered, and counted (`aftercare_http_connections_refused_total`).
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from aiohttp import web

from service.web.keys import METRICS

# aiohttp reads and drops what is left of a body it did not read (a cut trickle, a refused
# Content-Length) for this long before closing, so that the client sees the answer rather
# than a reset; its 10 s default would let a trickle hold the connection that much longer.
LINGER_SECONDS = 2.0


class ConnectionCap:
    """A protocol factory: `factory`'s protocols while fewer than `limit` are open; beyond,
    one that closes the connection at once."""

    def __init__(
        self,
        factory: Callable[[], asyncio.BaseProtocol],
        *,
        limit: int,
        on_change: Callable[[int], None] = lambda _open: None,
        on_refused: Callable[[], None] = lambda: None,
    ) -> None:
        self.factory, self.limit = factory, limit
        self.on_change, self.on_refused = on_change, on_refused
        self.open = 0

    def __call__(self) -> asyncio.BaseProtocol:
        """The protocol of a connection just accepted."""
        if self.open >= self.limit:
            self.on_refused()
            return _Refused()
        self.open += 1
        self.on_change(self.open)
        return _Counted(self.factory(), self._closed)

    def _closed(self) -> None:
        self.open -= 1
        self.on_change(self.open)


class _Refused(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


class _Counted(asyncio.Protocol):
    """`inner` as the transport sees it, and one call to `closed` when the connection ends."""

    def __init__(self, inner: Any, closed: Callable[[], None]) -> None:
        self.inner, self.closed = inner, closed

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        result: bool | None = self.inner.eof_received()
        return result

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed()
        self.inner.connection_lost(exc)


def run(
    app: web.Application,
    *,
    host: str,
    port: int,
    max_connections: int,
    loop: asyncio.AbstractEventLoop,
    reuse_port: bool = False,
    parent: int | None = None,
    **handler_args: Any,
) -> None:
    """Serve `app` on host:port (`SO_REUSEPORT` for a worker of several) until SIGTERM or
    SIGINT, then shut down gracefully (as `web.run_app` does); a worker whose supervisor,
    `parent`, is gone stops the same way. `handler_args` go to aiohttp's request handler."""
    asyncio.set_event_loop(loop)
    where = Listen(host, port, reuse_port)
    main = loop.create_task(_serve(app, where, max_connections, handler_args, parent))
    try:
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        if not main.done():
            main.cancel()
            with suppress(asyncio.CancelledError):
                loop.run_until_complete(main)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


class Listen:
    """Where to listen: host and port, shared with the other workers (`reuse_port`) or not."""

    def __init__(self, host: str, port: int, reuse_port: bool) -> None:
        self.host, self.port, self.reuse_port = host, port, reuse_port

    async def server(self, factory: Callable[[], asyncio.BaseProtocol]) -> asyncio.Server:
        """A server of `factory`'s protocols there."""
        loop = asyncio.get_running_loop()
        if self.reuse_port:
            return await loop.create_server(factory, self.host, self.port, reuse_port=True)
        return await loop.create_server(factory, self.host, self.port)


ORPHAN_CHECK = 1.0  # s between a worker's looks at whether its supervisor is still there


async def _orphaned(parent: int) -> None:
    """SIGTERM to this process once its parent is gone (the supervisor was killed): a worker
    must not serve on by itself."""
    while os.getppid() == parent:
        await asyncio.sleep(ORPHAN_CHECK)
    os.kill(os.getpid(), signal.SIGTERM)


async def _serve(
    app: web.Application,
    where: Listen,
    limit: int,
    handler_args: dict[str, Any],
    parent: int | None,
) -> None:
    runner = web.AppRunner(app, handle_signals=True, lingering_time=LINGER_SECONDS, **handler_args)
    await runner.setup()  # the app's startup: database, sender, dispatcher, deliverer
    try:
        assert runner.server is not None  # set by setup()
        metrics = app[METRICS]
        cap = ConnectionCap(
            runner.server,
            limit=limit,
            on_change=metrics.connections.set,
            on_refused=metrics.connections_refused.inc,
        )
        listener = await where.server(cap)
        watch = None if parent is None else asyncio.create_task(_orphaned(parent))
        try:
            await asyncio.Future()  # until a signal raises GracefulExit out of the loop
        finally:
            listener.close()  # no new connections; the runner drains the open ones
            if watch is not None:
                watch.cancel()
    finally:
        await runner.cleanup()
