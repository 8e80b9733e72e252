"""The Twilio sender's create is the request twilio's own async client makes
(service/delivery/sms/twilio.py encodes the form and the credentials itself and skips twilio's
unlogged log formatting): same request line, same headers but Host (in any order), same body,
for a text with characters that need quoting."""

from __future__ import annotations

import asyncio
from typing import Any

from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from service.delivery.sms.base import OutgoingSms
from service.delivery.sms.twilio import TwilioSender
from tests.fakes.twilio_wire import ACCOUNT_SID

ANSWER = b'{"sid": "SM' + b"1" * 32 + b'", "status": "queued"}'
SMS = OutgoingSms(
    message_id="m1",
    to="+14155550100",
    body="Héllo & ü+ = ?\nnext ✨ 100%",
    from_number="+15005550006",
    messaging_service_sid=None,
    status_callback="https://aftercare.example/v1/twilio/status",
    validity_period=3600,
)


async def _captured(create: Any) -> list[tuple[bytes, list[bytes], bytes]]:
    """The requests `create(base_url)` makes: request line, headers but Host, body."""
    seen: list[tuple[bytes, list[bytes], bytes]] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line, *headers = (await reader.readuntil(b"\r\n\r\n")).split(b"\r\n")
        length = next(
            int(h.split(b":")[1]) for h in headers if h.lower().startswith(b"content-length")
        )
        seen.append(
            (
                line,
                sorted(h for h in headers if h and not h.startswith(b"Host:")),
                await reader.readexactly(length),
            )
        )
        writer.write(
            b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(ANSWER), ANSWER)
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    async with server:
        await create(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
    return seen


async def test_the_create_is_twilios_own_request() -> None:
    """Same request line, headers (Authorization included) and body as twilio's client."""

    async def ours(base_url: str) -> None:
        sender = TwilioSender(
            account_sid=ACCOUNT_SID, auth_token="tok", api_base_url=base_url, timeout=5
        )
        try:
            assert (await sender.send(SMS)).provider_id == "SM" + "1" * 32
        finally:
            await sender.aclose()

    async def twilios(base_url: str) -> None:
        http = AsyncTwilioHttpClient()
        client = Client(ACCOUNT_SID, "tok", http_client=http)
        client.api.base_url = base_url
        try:
            await client.messages.create_async(
                to=SMS.to,
                body=SMS.body,
                from_=SMS.from_number,
                status_callback=SMS.status_callback,
                validity_period=SMS.validity_period,
            )
        finally:
            await http.close()

    assert await _captured(ours) == await _captured(twilios)
