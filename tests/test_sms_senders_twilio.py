"""The Twilio sender through the real twilio client against a fake (service.delivery.sms.twilio): a
send arrives with its to, from or messaging service, body and callback, once; Twilio's refusals are
opted out, permanent or retryable, no answer or a hang-up after sending ambiguous, with no phone
number in details or logs; find tells the message sent from others (body, recipient, sender, time)
and is ambiguous when Twilio cannot be asked; and the fake serves the real client from another
process too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from pytest_aiohttp import AiohttpServer

from service.delivery.sms.base import (
    Accepted,
    AmbiguousError,
    OptedOutError,
    PermanentError,
    RetryableError,
)
from service.delivery.sms.twilio import TwilioSender
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, serve
from tests.fakes.twilio_process import fake_twilio_process
from tests.fixtures.sms_senders import CALLBACK, FROM_NUMBER, RECIPIENT, SERVICE_SID, outgoing
from tests.helpers.ports import free_port

# twilio 9.13 passes `auth=` to aiohttp 3.14, whose warning reads "The 'auth' parameter is
# deprecated ..."; the pyproject filter `.*auth=.*` does not match that text.
pytestmark = pytest.mark.filterwarnings(
    "ignore:The 'auth' parameter is deprecated:DeprecationWarning"
)


def twilio_sender(base_url: str, *, timeout: float = 2.0) -> TwilioSender:
    """A TwilioSender talking to `base_url` with the fake's credentials."""
    return TwilioSender(
        account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, api_base_url=base_url, timeout=timeout
    )


@pytest.fixture
def fake() -> FakeTwilio:
    """A fake Twilio that sends no status callbacks."""
    return FakeTwilio(callbacks=False)


@pytest.fixture
async def base_url(aiohttp_server: AiohttpServer, fake: FakeTwilio) -> str:
    """The fake's base URL, served in the test's event loop."""
    return await serve(aiohttp_server, fake)


@pytest.fixture
async def sender(base_url: str) -> AsyncIterator[TwilioSender]:
    """A TwilioSender against the fake, closed after the test."""
    sender = twilio_sender(base_url)
    yield sender
    await sender.aclose()


@pytest.fixture
async def hasty_sender(base_url: str) -> AsyncIterator[TwilioSender]:
    """A TwilioSender against the fake that waits only 0.3 s for an answer."""
    sender = twilio_sender(base_url, timeout=0.3)
    yield sender
    await sender.aclose()


@pytest.fixture
async def unreachable_sender() -> AsyncIterator[TwilioSender]:
    """A TwilioSender pointed at a loopback port nothing listens on."""
    sender = twilio_sender(f"http://127.0.0.1:{free_port()}")
    yield sender
    await sender.aclose()


async def disconnect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read the start of a request, then hang up without answering."""
    await reader.read(1)
    writer.close()


class TestTwilioSend:
    async def test_message_arrives_with_to_from_body_and_callback(
        self, sender: TwilioSender, fake: FakeTwilio
    ) -> None:
        """Twilio receives the recipient, the clinic's number, the body and the status callback."""
        await sender.send(outgoing())
        [message] = fake.messages
        assert (message.to, message.from_, message.service) == (RECIPIENT, FROM_NUMBER, None)
        assert message.body == "Keep the treated area out of the sun today."
        assert message.callback == CALLBACK

    async def test_returns_twilio_sid_and_status(
        self, sender: TwilioSender, fake: FakeTwilio
    ) -> None:
        """The answer carries Twilio's sid and the status of its create answer."""
        accepted = await sender.send(outgoing())
        assert accepted == Accepted(provider_id=fake.messages[0].sid, status="queued")

    async def test_uses_messaging_service_without_from_number(
        self, sender: TwilioSender, fake: FakeTwilio
    ) -> None:
        """Without a from number, the clinic's messaging service sid is sent instead."""
        await sender.send(outgoing(from_number=None, messaging_service_sid=SERVICE_SID))
        [message] = fake.messages
        assert (message.from_, message.service) == (None, SERVICE_SID)

    async def test_sends_once_without_retrying_itself(
        self, sender: TwilioSender, fake: FakeTwilio
    ) -> None:
        """A 5xx answer is not retried by the client: exactly one create reaches Twilio."""
        fake.behaviours[RECIPIENT] = "flaky:1"
        with pytest.raises(AmbiguousError):
            await sender.send(outgoing())
        assert len(fake.attempts) == 1


class TestTwilioSendErrors:
    async def test_unsubscribed_recipient_is_opted_out(
        self, sender: TwilioSender, fake: FakeTwilio
    ) -> None:
        """21610 raises OptedOutError with the code."""
        fake.behaviours[RECIPIENT] = "error:21610"
        with pytest.raises(OptedOutError) as raised:
            await sender.send(outgoing())
        assert raised.value.code == 21610

    async def test_invalid_number_is_permanent(self, sender: TwilioSender) -> None:
        """21211 (invalid number) raises PermanentError with the code."""
        with pytest.raises(PermanentError) as raised:
            await sender.send(outgoing(to="+0123"))
        assert raised.value.code == 21211
        assert not isinstance(raised.value, OptedOutError)

    async def test_not_mobile_is_permanent(self, sender: TwilioSender, fake: FakeTwilio) -> None:
        """21614 (not a mobile number) raises PermanentError with the code."""
        fake.behaviours[RECIPIENT] = "error:21614"
        with pytest.raises(PermanentError) as raised:
            await sender.send(outgoing())
        assert raised.value.code == 21614

    async def test_unknown_4xx_is_permanent(self, sender: TwilioSender, fake: FakeTwilio) -> None:
        """A 400 with a code we do not know raises PermanentError with that code."""
        fake.behaviours[RECIPIENT] = "error:99999"
        with pytest.raises(PermanentError) as raised:
            await sender.send(outgoing())
        assert raised.value.code == 99999

    async def test_rate_limit_is_retryable(self, sender: TwilioSender, fake: FakeTwilio) -> None:
        """A 429 (20429) raises RetryableError: Twilio did not process the message."""
        fake.behaviours[RECIPIENT] = "ratelimit:1"
        with pytest.raises(RetryableError) as raised:
            await sender.send(outgoing())
        assert raised.value.code == 20429

    async def test_server_error_is_ambiguous(self, sender: TwilioSender, fake: FakeTwilio) -> None:
        """A 500 raises AmbiguousError: the message may have been sent."""
        fake.behaviours[RECIPIENT] = "flaky:1"
        with pytest.raises(AmbiguousError):
            await sender.send(outgoing())

    async def test_no_answer_is_ambiguous_within_the_timeout(
        self, hasty_sender: TwilioSender, fake: FakeTwilio
    ) -> None:
        """A request Twilio never answers raises AmbiguousError once the timeout passes."""
        fake.behaviours[RECIPIENT] = "hang"
        started = time.monotonic()
        with pytest.raises(AmbiguousError):
            await hasty_sender.send(outgoing())
        assert 0.3 <= time.monotonic() - started < 1.5

    async def test_refused_connection_is_retryable(self, unreachable_sender: TwilioSender) -> None:
        """A refused connection raises RetryableError: nothing was sent."""
        with pytest.raises(RetryableError):
            await unreachable_sender.send(outgoing())

    async def test_disconnect_after_sending_is_ambiguous(self) -> None:
        """A server that hangs up after receiving the request raises AmbiguousError."""
        server = await asyncio.start_server(disconnect, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        sender = twilio_sender(f"http://127.0.0.1:{port}")
        try:
            with pytest.raises(AmbiguousError):
                await sender.send(outgoing())
        finally:
            await sender.aclose()
            server.close()
            await server.wait_closed()

    async def test_error_detail_masks_phone_numbers(self, sender: TwilioSender) -> None:
        """Twilio's message quoting the number ends up masked in the error's detail."""
        with pytest.raises(PermanentError) as raised:
            await sender.send(outgoing(to="+1555010012345678"))
        assert "+1555010012345678" not in str(raised.value)
        assert "•••••••5678" in str(raised.value)

    async def test_logs_carry_no_phone_number(
        self, sender: TwilioSender, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Neither a send nor a find puts the recipient's number in our logs or twilio's."""
        caplog.set_level(logging.DEBUG)
        await sender.send(outgoing())
        await sender.find(outgoing(), since=datetime.now(UTC))
        ours = [r for r in caplog.records if r.name != "aiohttp.access"]  # the fake's own log
        assert not [r for r in ours if "0100123" in r.getMessage()]


class TestTwilioFind:
    async def test_finds_the_message_sent(self, sender: TwilioSender) -> None:
        """A message sent since `since` is found with its sid and status."""
        since = datetime.now(UTC)
        accepted = await sender.send(outgoing())
        assert await sender.find(outgoing(), since=since) == accepted

    async def test_finds_a_message_created_just_before_since(self, sender: TwilioSender) -> None:
        """Clocks may disagree: a record up to five minutes older than `since` still counts."""
        accepted = await sender.send(outgoing())
        since = datetime.now(UTC) + timedelta(minutes=4)
        assert await sender.find(outgoing(), since=since) == accepted

    async def test_ignores_a_message_created_well_before_since(self, sender: TwilioSender) -> None:
        """The same text sent more than five minutes before `since` is another message."""
        await sender.send(outgoing())
        since = datetime.now(UTC) + timedelta(minutes=10)
        assert await sender.find(outgoing(), since=since) is None

    async def test_none_for_another_body(self, sender: TwilioSender) -> None:
        """A message with another body to the same recipient is not ours."""
        since = datetime.now(UTC)
        await sender.send(outgoing(body="Apply the serum tonight."))
        assert await sender.find(outgoing(), since=since) is None

    async def test_none_for_another_recipient(self, sender: TwilioSender) -> None:
        """The same body sent to another recipient is not ours."""
        since = datetime.now(UTC)
        await sender.send(outgoing(to="+15550100999"))
        assert await sender.find(outgoing(), since=since) is None

    async def test_none_for_another_from_number(self, sender: TwilioSender) -> None:
        """The same body from another of the clinic's numbers is not ours."""
        since = datetime.now(UTC)
        await sender.send(outgoing(from_number="+15005550007"))
        assert await sender.find(outgoing(), since=since) is None

    async def test_failure_to_list_is_ambiguous(self, unreachable_sender: TwilioSender) -> None:
        """When Twilio cannot be asked, find raises AmbiguousError (reconcile again later)."""
        with pytest.raises(AmbiguousError):
            await unreachable_sender.find(outgoing(), since=datetime.now(UTC))


class TestFakeTwilioProcess:
    async def test_serves_the_real_client_from_another_process(self) -> None:
        """The fake run with `python -m tests.fakes.twilio` accepts and lists a message."""
        async with fake_twilio_process(callbacks=False) as url:
            sender = twilio_sender(url)
            try:
                accepted = await sender.send(outgoing())
                found = await sender.find(outgoing(), since=datetime.now(UTC))
            finally:
                await sender.aclose()
        assert found == accepted
