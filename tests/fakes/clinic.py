"""A clinic system's endpoint for notifications (contract §11), on loopback, in the test's loop.

Every POST is verified with `standardwebhooks.Webhook(secret).verify` on the raw body (a bad
signature is recorded as such and answered 401) and recorded with its `webhook-id`. What it
answers is planned: `answers` is a queue of what to do with the next POSTs (an HTTP status,
`"redirect"` (307 to another path), `"hang"` (never answer until released), or
`"slow:SECONDS"`); when it is empty, 200.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pytest_aiohttp import AiohttpServer
from standardwebhooks import Webhook

PATH = "/hooks/aftercare"


@dataclass
class Received:
    """One POST as it arrived."""

    webhook_id: str
    verified: bool
    body: dict[str, Any] | None
    answered: int | str


@dataclass
class FakeClinic:
    """The endpoint's state: what it was sent, what it will answer."""

    secret: str
    answers: deque[int | str] = field(default_factory=deque)
    received: list[Received] = field(default_factory=list)
    redirected: int = 0  # requests that followed a redirect (there must be none)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(PATH, self.hook)
        app.router.add_route("*", "/elsewhere", self.elsewhere)
        return app

    async def hook(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = Webhook(self.secret).verify(raw, dict(request.headers))
            verified = True
        except Exception:
            body, verified = None, False
        plan: int | str = self.answers.popleft() if self.answers else 200
        if not verified:
            plan = 401
        self.received.append(Received(request.headers.get("webhook-id", ""), verified, body, plan))
        if plan == "hang":
            await self.release.wait()
            plan = 200
        if isinstance(plan, str) and plan.startswith("slow:"):
            await asyncio.sleep(float(plan.split(":", 1)[1]))
            plan = 200
        if plan == "redirect":
            raise web.HTTPTemporaryRedirect("/elsewhere")
        return web.Response(status=int(plan), text=json.dumps({"secret": "not to be logged"}))

    async def elsewhere(self, request: web.Request) -> web.Response:
        self.redirected += 1
        return web.Response(status=200)

    def ids(self) -> list[str]:
        """The webhook-ids received, in order of arrival."""
        return [r.webhook_id for r in self.received]


async def serve_clinic(aiohttp_server: AiohttpServer, clinic: FakeClinic) -> str:
    """Start the endpoint; its URL."""
    server = await aiohttp_server(clinic.app())
    return f"http://127.0.0.1:{server.port}{PATH}"
