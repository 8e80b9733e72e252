"""Twilio's media, as the fake serves it (contract §17; NOTES.md "Twilio media").

`MediaUrl` is `{api}/2010-04-01/Accounts/{AC}/Messages/{MM}/Media/{ME}`: a GET with the
account's Basic auth answers 307 to a short-lived URL on the CDN, a second server on another
loopback address (127.0.0.2 by default) that serves the bytes without auth, as
mms.twiliocdn.com does. A DELETE of the resource is recorded and forgets it. `refuse_first`
answers 500 to that many GETs; `redirect_host` sends the redirect to another host (a CDN
the service must not follow to).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import BasicAuth, web
from pytest_aiohttp import AiohttpServer

if TYPE_CHECKING:
    from tests.fakes.twilio import FakeTwilio

LINK_SECONDS = 60.0  # how long a CDN link is good for


@dataclass
class FakeMedia:
    """The media resources, the CDN's links, and what was asked of them."""

    account_sid: str
    auth_token: str
    api_base: str = ""
    cdn_base: str = ""
    items: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # ME sid: bytes, type
    links: dict[str, tuple[str, float]] = field(default_factory=dict)  # token: ME sid, until
    gets: list[tuple[str, bool]] = field(default_factory=list)  # ME sid, authorised
    cdn_gets: list[tuple[str, str | None]] = field(default_factory=list)  # token, Authorization
    deleted: list[str] = field(default_factory=list)
    refuse_first: int = 0
    redirect_host: str | None = None

    def add(self, data: bytes, content_type: str) -> str:
        """A new media resource; its MediaUrl."""
        sid = "ME" + secrets.token_hex(16)
        self.items[sid] = (data, content_type)
        message = "MM" + secrets.token_hex(16)
        return (
            f"{self.api_base}/2010-04-01/Accounts/{self.account_sid}/Messages/{message}/Media/{sid}"
        )

    def mount(self, app: web.Application) -> None:
        """The media routes on the fake Twilio API's app."""
        path = "/2010-04-01/Accounts/{account}/Messages/{message}/Media/{sid}"
        app.router.add_get(path, self.get)
        app.router.add_delete(path, self.delete)
        app.router.add_delete(path + ".json", self.delete)
        app.router.add_post("/_control/media", self.control_add)

    async def control_add(self, request: web.Request) -> web.Response:
        """`POST /_control/media` (the bytes, their type as Content-Type): a new resource, as
        `add`, for a test driving the fake in a process of its own; `{"url": MediaUrl}`."""
        return web.json_response({"url": self.add(await request.read(), request.content_type)})

    def cdn_app(self) -> web.Application:
        """The CDN: bytes by a short-lived token, no auth."""
        app = web.Application()
        app.router.add_get("/cdn/{token}", self.cdn)
        return app

    def _authorised(self, request: web.Request) -> bool:
        try:
            auth = BasicAuth.decode(request.headers.get("Authorization", ""))
        except ValueError:
            return False
        return (auth.login, auth.password) == (self.account_sid, self.auth_token)

    async def get(self, request: web.Request) -> web.Response:
        sid = request.match_info["sid"].removesuffix(".json")
        self.gets.append((sid, self._authorised(request)))
        if not self._authorised(request):
            return web.json_response({"code": 20003, "message": "Authenticate"}, status=401)
        if sid not in self.items:
            return web.json_response({"code": 20404, "message": "Not found"}, status=404)
        if self.refuse_first > 0:
            self.refuse_first -= 1
            return web.Response(status=500, text="oops")
        token = secrets.token_urlsafe(16)
        self.links[token] = (sid, time.monotonic() + LINK_SECONDS)
        base = self.redirect_host or self.cdn_base
        raise web.HTTPTemporaryRedirect(f"{base}/cdn/{token}")

    async def cdn(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        self.cdn_gets.append((token, request.headers.get("Authorization")))
        sid, until = self.links.get(token, ("", 0.0))
        if sid not in self.items or time.monotonic() > until:
            return web.Response(status=403, text="expired")
        data, content_type = self.items[sid]
        return web.Response(body=data, content_type=content_type)

    async def delete(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"code": 20003, "message": "Authenticate"}, status=401)
        sid = request.match_info["sid"].removesuffix(".json")
        self.deleted.append(sid)
        return web.Response(status=204 if self.items.pop(sid, None) else 404)


async def serve_media(aiohttp_server: AiohttpServer, fake: FakeTwilio, api_base: str) -> str:
    """Start the CDN on 127.0.0.2 beside `fake` (served at `api_base`); the CDN's base URL."""
    fake.media.api_base = api_base
    server = await aiohttp_server(fake.media.cdn_app(), host="127.0.0.2")
    fake.media.cdn_base = str(server.make_url("")).rstrip("/")
    return fake.media.cdn_base
