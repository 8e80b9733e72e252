"""The SMS senders: console for development, Twilio through the real client against a fake."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pytest_aiohttp import AiohttpServer

from service.delivery.sms.base import (
    Accepted,
    AmbiguousError,
    OptedOutError,
    OutgoingSms,
    PermanentError,
    RetryableError,
)
from service.delivery.sms.console import ConsoleSender
from service.delivery.sms.twilio import TwilioSender
from service.observability.masking import mask_phone, mask_phones
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, serve
from tests.fakes.twilio_process import fake_twilio_process
from tests.helpers.ports import free_port

RECIPIENT = "+15550100123"
FROM_NUMBER = "+15005550006"
SERVICE_SID = "MG" + "1" * 32
CALLBACK = "https://aftercare.example/v1/twilio/status"

# twilio 9.13 passes `auth=` to aiohttp 3.14, whose warning reads "The 'auth' parameter is
# deprecated ..."; the pyproject filter `.*auth=.*` does not match that text.
pytestmark = pytest.mark.filterwarnings(
    "ignore:The 'auth' parameter is deprecated:DeprecationWarning"
)


def outgoing(**overrides: Any) -> OutgoingSms:
    """A message from the clinic's number, with `overrides` applied."""
    fields: dict[str, Any] = {
        "message_id": "msg-1",
        "to": RECIPIENT,
        "body": "Keep the treated area out of the sun today.",
        "from_number": FROM_NUMBER,
        "status_callback": CALLBACK,
    }
    return OutgoingSms(**(fields | overrides))


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


class TestMaskPhone:
    def test_keeps_only_the_last_four_digits(self) -> None:
        """A number becomes a fixed mask followed by its last four digits."""
        assert mask_phone("+15550100123") == "•••••••0123"

    def test_mask_does_not_reveal_the_length(self) -> None:
        """Numbers of different lengths get masks of the same width."""
        assert len(mask_phone("+4930123456789")) == len(mask_phone("+15550100123"))

    def test_short_numbers_are_masked_entirely(self) -> None:
        """A number of four digits or fewer shows no digit at all."""
        assert mask_phone("1234") == "•••••••"

    def test_masks_numbers_inside_text(self) -> None:
        """Every phone number inside free text is masked."""
        text = "The 'To' number +15550100123 is not a valid phone number."
        assert mask_phones(text) == "The 'To' number •••••••0123 is not a valid phone number."

    def test_leaves_timestamps_and_ids_alone(self) -> None:
        """Dates, times and digit runs that are not E.164 numbers are not masked."""
        text = '{"time": "2026-11-25T15:26:04.116197+00:00", "id": "msg_20261125"}'
        assert mask_phones(text) == text


class TestConsoleSender:
    async def test_logs_masked_recipient_message_id_and_body(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A send logs one INFO line with the masked recipient, the message id and the body."""
        caplog.set_level(logging.INFO, logger="aftercare.sms.console")
        await ConsoleSender().send(outgoing())
        [record] = caplog.records
        assert record.levelno == logging.INFO
        assert "•••••••0123" in record.getMessage()
        assert "msg-1" in record.getMessage()
        assert "Keep the treated area out of the sun today." in record.getMessage()
        assert RECIPIENT not in record.getMessage()

    async def test_reports_sent_with_a_local_id(self) -> None:
        """A send is accepted as sent under a `console-` id unique to it."""
        sender = ConsoleSender()
        first, second = await sender.send(outgoing()), await sender.send(outgoing())
        assert first.status == "sent"
        assert first.provider_id.startswith("console-")
        assert first.provider_id != second.provider_id

    async def test_find_reports_nothing(self) -> None:
        """There is never a provider record to reconcile."""
        assert await ConsoleSender().find(outgoing(), since=datetime.now(UTC)) is None


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
