"""A Twilio-compatible Messages API on loopback, driven by the real twilio client.

Adapted from the fake Twilio of the contract's smoke suite (which lives beside the contract).
It answers the calls twilio-python makes for Messages (create, list, fetch),
checks Basic auth, records every create attempt and every message with its
arrival time, and posts signed status callbacks for every change after creation
like Twilio does (`sending`, `sent`, then `delivered` or `undelivered`; never
the initial `queued`), each `callback_delay` seconds after the last (default
20 ms), unless built with `callbacks=False`. Per-recipient behaviours
(`fake.behaviours[to] = ...`) inject faults:

  error:CODE      answer 400 with that Twilio error code (21610, 21211, ...)
  flaky:N         answer 500 (a non-JSON body) to the first N creates
  ratelimit:N     answer 429 (code 20429) to the first N creates
  slow:SECONDS    wait that long before answering (and before accepting)
  lateanswer:S    accept and record the message, then wait S seconds to answer
  hang            never answer (until the server shuts down): for timeouts
  undelivered     callbacks end in 'undelivered' (code 30003)

MMS media (GET behind Basic auth, a redirect to a CDN, DELETE): `fake.media`
(tests/fakes/twilio_media.py).
In a test's event loop:   base_url = await serve(aiohttp_server, fake)
As a separate process:    tests/fakes/twilio_process.py
Control endpoints (not Twilio's): GET /_control/messages, POST
/_control/behaviour {"to": ..., "behaviour": ...}, POST /_control/reset.
What it records is tests/fakes/twilio_records.py; how it refuses, tests/fakes/twilio_faults.py.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

from aiohttp import BasicAuth, ClientError, ClientSession, web
from pytest_aiohttp import AiohttpServer

from tests.fakes.twilio_faults import delay, error_response, refusal
from tests.fakes.twilio_media import FakeMedia
from tests.fakes.twilio_records import Recorded, attempt, filtered
from tests.fakes.twilio_wire import (
    ACCOUNT_SID,
    UNDELIVERED_CODE,
    callback_form,
    message_page,
    message_resource,
    rfc2822,
    sign_twilio,
)

__all__ = ["ACCOUNT_SID", "AUTH_TOKEN", "FakeTwilio", "message_sid", "serve", "sign_twilio"]

AUTH_TOKEN = "fake-twilio-token"


def message_sid() -> str:
    """A new MessageSid, as Twilio gives each text: "SM" and 32 hex digits."""
    return "SM" + secrets.token_hex(16)


class FakeTwilio:
    """The fake's state and its aiohttp application."""

    def __init__(
        self,
        account_sid: str = ACCOUNT_SID,
        auth_token: str = AUTH_TOKEN,
        *,
        callbacks: bool = True,
        callback_delay: float = 0.02,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.callbacks = callbacks
        self.callback_delay = callback_delay
        self.messages: list[Recorded] = []
        self.attempts: list[dict[str, Any]] = []  # every create call, answered or not
        self.behaviours: dict[str, str] = {}
        self.counters: dict[str, int] = {}
        self.answering = 0  # creates received and not answered yet
        self.callbacks_sent: list[tuple[str, str, int]] = []
        self.session: ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._shutting_down: asyncio.Event | None = None
        self.media = FakeMedia(account_sid, auth_token)  # MMS media and its CDN (twilio_media)

    # --- app -----------------------------------------------------------
    def app(self) -> web.Application:
        """A fresh aiohttp application serving this fake."""
        app = web.Application()
        base = "/2010-04-01/Accounts/{account}"
        app.router.add_post(base + "/Messages.json", self.create)
        app.router.add_get(base + "/Messages.json", self.list)
        app.router.add_get(base + "/Messages/{sid}.json", self.fetch)
        self.media.mount(app)
        app.router.add_get("/_control/messages", self.control_messages)
        app.router.add_post("/_control/behaviour", self.control_behaviour)
        app.router.add_post("/_control/reset", self.control_reset)
        app.on_startup.append(self._start)
        app.on_shutdown.append(self._release_hangs)
        app.on_cleanup.append(self._stop)
        return app

    async def _start(self, app: web.Application) -> None:
        self.session = ClientSession()
        self._shutting_down = asyncio.Event()

    async def _release_hangs(self, app: web.Application) -> None:
        if self._shutting_down:
            self._shutting_down.set()

    async def _stop(self, app: web.Application) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self.session:
            await self.session.close()

    # --- helpers -------------------------------------------------------
    def _authorised(self, request: web.Request) -> bool:
        try:
            auth = BasicAuth.decode(request.headers.get("Authorization", ""))
        except ValueError:
            return False
        return (auth.login, auth.password, request.match_info["account"]) == (
            self.account_sid,
            self.auth_token,
            self.account_sid,
        )

    def _resource(self, m: Recorded) -> dict[str, Any]:
        return message_resource(
            sid=m.sid,
            account_sid=self.account_sid,
            to=m.to,
            from_=m.from_,
            body=m.body,
            date_created=rfc2822(m.date_created.timestamp()),
            status=m.status,
            service=m.service,
            error_code=m.error_code,
        )

    def _count(self, to: str) -> int:
        self.counters[to] = self.counters.get(to, 0) + 1
        return self.counters[to]

    # --- Twilio endpoints ---------------------------------------------
    async def create(self, request: web.Request) -> web.Response:
        """POST Messages.json: record the attempt, then refuse or accept it."""
        if not self._authorised(request):
            return error_response(401, 20003, "Authenticate")
        form = {key: str(value) for key, value in (await request.post()).items()}
        self.attempts.append({**attempt(form), "beside": self.answering})
        self.answering += 1
        try:
            return await self._answer(form)
        finally:
            self.answering -= 1

    async def _answer(self, form: dict[str, str]) -> web.Response:
        to = form.get("To", "")
        behaviour = self.behaviours.get(to, "")
        n = self._count(to)
        await delay(behaviour, self._shutting_down)
        refused = refusal(form, behaviour, n)
        if refused is not None:
            return refused
        m = Recorded(
            sid="SM" + secrets.token_hex(16),
            to=to,
            from_=form.get("From"),
            service=form.get("MessagingServiceSid"),
            body=form["Body"],
            callback=form.get("StatusCallback"),
            at=time.time(),
            validity_period=int(form["ValidityPeriod"]) if "ValidityPeriod" in form else None,
        )
        self.messages.append(m)
        self._schedule_callbacks(m, behaviour)
        answer = self._resource(m)  # as created (queued), whatever callbacks follow it
        if behaviour.startswith("lateanswer:"):  # accepted, but the answer is slow to come
            await asyncio.sleep(float(behaviour.split(":", 1)[1]))
        return web.json_response(answer, status=201)

    async def list(self, request: web.Request) -> web.Response:
        """GET Messages.json: filter by To, From and DateSent (by day), newest first."""
        if not self._authorised(request):
            return error_response(401, 20003, "Authenticate")
        found = sorted(filtered(self.messages, request.query), key=lambda m: -m.at)
        size = int(request.query.get("PageSize", 50))
        resources = [self._resource(m) for m in found[:size]]
        return web.json_response(message_page(resources, uri=request.path_qs, page_size=size))

    async def fetch(self, request: web.Request) -> web.Response:
        """GET Messages/{sid}.json."""
        if not self._authorised(request):
            return error_response(401, 20003, "Authenticate")
        for m in self.messages:
            if m.sid == request.match_info["sid"]:
                return web.json_response(self._resource(m))
        return error_response(404, 20404, "The requested resource was not found")

    # --- status callbacks ------------------------------------------------
    def _schedule_callbacks(self, m: Recorded, behaviour: str) -> None:
        if not (self.callbacks and m.callback):
            return
        final = "undelivered" if behaviour == "undelivered" else "delivered"
        task = asyncio.get_running_loop().create_task(self._callbacks(m, final))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _callbacks(self, m: Recorded, final: str) -> None:
        for status in ("sending", "sent", final):
            await asyncio.sleep(self.callback_delay)
            m.status = status
            if status == "undelivered":
                m.error_code = UNDELIVERED_CODE
            await self._post_callback(m, status)

    async def _post_callback(self, m: Recorded, status: str) -> None:
        assert m.callback is not None and self.session is not None
        params = callback_form(
            sid=m.sid,
            account_sid=self.account_sid,
            to=m.to,
            from_=m.from_,
            status=status,
            error_code=m.error_code,
        )
        headers = {"X-Twilio-Signature": sign_twilio(self.auth_token, m.callback, params)}
        try:
            async with self.session.post(m.callback, data=params, headers=headers) as r:
                self.callbacks_sent.append((m.sid, status, r.status))
        except (ClientError, OSError):  # the service may be down; Twilio would not retry either
            self.callbacks_sent.append((m.sid, status, -1))

    # --- control --------------------------------------------------------
    async def control_messages(self, request: web.Request) -> web.Response:
        """What the fake has seen: messages, attempts and callbacks."""
        keys = ("sid", "to", "from_", "service", "body", "callback", "at", "status")
        messages = [{k.rstrip("_"): getattr(m, k) for k in keys} for m in self.messages]
        seen = {"messages": messages, "attempts": self.attempts, "callbacks": self.callbacks_sent}
        return web.json_response(seen)

    async def control_behaviour(self, request: web.Request) -> web.Response:
        """Set one recipient's behaviour and restart its counter."""
        body = await request.json()
        self.behaviours[body["to"]] = body["behaviour"]
        self.counters.pop(body["to"], None)
        return web.json_response({"ok": True})

    async def control_reset(self, request: web.Request) -> web.Response:
        """Forget everything."""
        for store in (self.messages, self.attempts, self.callbacks_sent):
            store.clear()
        self.behaviours.clear()
        self.counters.clear()
        return web.json_response({"ok": True})


# --- running it ----------------------------------------------------------
async def serve(aiohttp_server: AiohttpServer, fake: FakeTwilio) -> str:
    """Start `fake` in the test's event loop (pytest-aiohttp); its base URL."""
    server = await aiohttp_server(fake.app())
    return str(server.make_url("")).rstrip("/")
