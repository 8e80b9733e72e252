"""Twilio's status callbacks (contract §7): a signed `delivered` moves the message forward with
history, late and repeated callbacks change nothing, `undelivered` keeps the error code, an unknown
sid is a 200 that changes nothing, a callback before the create's answer is applied, and a forged
one is a 403 that changes nothing. The world is tests/fixtures/twilio_hooks.py's."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, sign_twilio
from tests.fixtures.twilio_hooks import first_message, sent_plan, start
from tests.processes import until_async as until
from tests.support import PHONE

__all__ = ["start"]  # the fixture, from tests/fixtures/twilio_hooks.py


class TestStatusCallbacks:
    async def test_delivered_moves_the_message_forward(self, start: Any) -> None:
        """A signed `delivered` callback marks the message delivered, with history."""
        service = await start()
        plan, sid = await sent_plan(service)
        assert (await service.status(sid, "sent")).status == 200
        assert (await service.status(sid, "delivered")).status == 200
        first = await first_message(service, plan)
        assert first["status"] == "delivered"
        assert [h["status"] for h in first["history"]] == [
            "scheduled",
            "sending",
            "sent",
            "delivered",
        ]

    async def test_late_and_repeated_callbacks_change_nothing(self, start: Any) -> None:
        """Out of order and duplicates: a late `sent` never overwrites `delivered`."""
        service = await start()
        plan, sid = await sent_plan(service)
        for status in ("delivered", "delivered", "sent", "queued", "delivered"):
            assert (await service.status(sid, status)).status == 200
        first = await first_message(service, plan)
        assert first["status"] == "delivered"
        assert [h["status"] for h in first["history"]].count("delivered") == 1

    async def test_undelivered_keeps_the_error_code(self, start: Any) -> None:
        """`undelivered` with ErrorCode 30003 is recorded with the code."""
        service = await start()
        plan, sid = await sent_plan(service)
        await service.status(sid, "undelivered", ErrorCode="30003")
        first = await first_message(service, plan)
        assert (first["status"], first["error_code"]) == ("undelivered", 30003)
        assert first["history"][-1]["error_code"] == 30003

    @pytest.mark.parametrize("code", ["²", "٣٠٠٠٣", "99999999999", "30003x"])
    async def test_an_error_code_that_is_no_number_is_kept_as_none(
        self, start: Any, code: str
    ) -> None:
        """ErrorCode "²" (a digit to str.isdigit, not to int: was a 500 found by schemathesis),
        other scripts' digits, one too large for the column: the status applies, no code."""
        service = await start()
        plan, sid = await sent_plan(service)
        assert (await service.status(sid, "undelivered", ErrorCode=code)).status == 200
        first = await first_message(service, plan)
        assert (first["status"], first["error_code"]) == ("undelivered", None)

    async def test_unknown_sid_is_200_and_changes_nothing(self, start: Any) -> None:
        """A callback for a sid the service never sent answers 200."""
        service = await start()
        plan, _ = await sent_plan(service)
        assert (await service.status("SM" + "f" * 32, "delivered")).status == 200
        assert (await first_message(service, plan))["status"] == "sent"

    async def test_callback_before_the_create_answer_is_applied(self, start: Any) -> None:
        """A fast carrier's callbacks that beat Twilio's create answer are not lost."""
        service = await start(callbacks=True)
        service.fake.behaviours[PHONE] = "lateanswer:1"
        plan = await service.plan(due_in=0)

        async def delivered() -> bool:
            return bool((await first_message(service, plan))["status"] == "delivered")

        await until(delivered)
        assert [c[1] for c in service.fake.callbacks_sent] == ["sending", "sent", "delivered"]

    @pytest.mark.parametrize("signature", ["", "forged", None])
    async def test_forged_callback_is_403_and_changes_nothing(
        self, start: Any, signature: str | None
    ) -> None:
        """A missing, wrong, or other-URL signature is refused and changes nothing."""
        service = await start()
        plan, sid = await sent_plan(service)
        params = {"MessageSid": sid, "MessageStatus": "undelivered", "AccountSid": ACCOUNT_SID}
        if signature is None:  # signed, but for a URL the service is not reached at
            signature = sign_twilio(AUTH_TOKEN, "http://evil.example/v1/twilio/status", params)
        response = await service.twilio_post("/v1/twilio/status", params, signature=signature)
        assert response.status == 403
        assert response.content_type == "application/problem+json"
        assert (await first_message(service, plan))["status"] == "sent"
