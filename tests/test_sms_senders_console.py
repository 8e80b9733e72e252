"""Phone masking and the console sender for development (service.observability.masking,
service.delivery.sms.console): only the last four digits shown, at one width, numbers inside text
masked and timestamps and ids left alone; a console send logs one masked INFO line, is sent under a
local id, and finds nothing to reconcile.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from service.delivery.sms.console import ConsoleSender
from service.observability.masking import mask_phone, mask_phones
from tests.fixtures.sms_senders import RECIPIENT, outgoing


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
