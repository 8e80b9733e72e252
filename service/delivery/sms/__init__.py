"""SMS senders: `console` for local development, `twilio` for production."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from service.config import Settings
    from service.delivery.sms.base import SmsSender


def make_sender(settings: Settings) -> SmsSender:
    """The configured sender. Call inside a running event loop (Twilio's client needs one)."""
    if settings.sms.backend == "twilio":
        from service.delivery.sms.twilio import TwilioSender

        return TwilioSender(
            account_sid=settings.twilio.account_sid,
            auth_token=settings.twilio.auth_token.get_secret_value(),
            api_base_url=settings.twilio.api_base_url,
            timeout=settings.twilio.request_timeout.total_seconds(),
        )
    from service.delivery.sms.console import ConsoleSender

    return ConsoleSender()
