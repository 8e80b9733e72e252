"""How the fake Twilio (tests/fakes/twilio.py) refuses a create: what Twilio itself refuses (a
To that is no E.164 number, no Body, neither From nor MessagingServiceSid), and the faults a
recipient's behaviour injects (`error:`, `flaky:`, `ratelimit:`, `hang`) or the wait it asks
for (`slow:`, `hang`); the fake's docstring lists them."""

from __future__ import annotations

import asyncio
import re

from aiohttp import web

from tests.fakes.twilio_wire import error_body

E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def error_response(status: int, code: int, message: str) -> web.Response:
    """Twilio's JSON answer refusing a request."""
    return web.json_response(error_body(status, code, message), status=status)


async def delay(behaviour: str, shutting_down: asyncio.Event | None) -> None:
    """Wait as `slow:` or `hang` asks (`hang` until `shutting_down` is set)."""
    if behaviour.startswith("slow:"):
        await asyncio.sleep(float(behaviour.split(":", 1)[1]))
    elif behaviour == "hang" and shutting_down:
        await shutting_down.wait()


def refusal(form: dict[str, str], behaviour: str, n: int) -> web.Response | None:
    """The error answer for this create (the recipient's `n`th), if it gets one."""
    to = form.get("To", "")
    if not E164.match(to):
        return error_response(400, 21211, f"The 'To' number {to} is not a valid phone number.")
    if not form.get("Body"):
        return error_response(400, 21602, "Message body is required.")
    if not (form.get("From") or form.get("MessagingServiceSid")):
        message = "A 'From' or 'MessagingServiceSid' parameter is required"
        return error_response(400, 21603, message)
    kind, _, arg = behaviour.partition(":")
    if kind == "error":
        return error_response(400, int(arg), f"injected error {arg}")
    if kind == "flaky" and n <= int(arg):
        return web.Response(status=500, text="injected server error")
    if kind == "ratelimit" and n <= int(arg):
        return error_response(429, 20429, "Too Many Requests")
    if kind == "hang":
        return web.Response(status=503, text="shutting down")
    return None
