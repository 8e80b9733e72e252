"""A sender for local development: it prints the message instead of sending it."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from service.delivery.sms.base import Accepted, OutgoingSms
from service.observability.masking import mask_phone

logger = logging.getLogger("aftercare.sms.console")


class ConsoleSender:
    """Logs each message (recipient masked, body shown) and reports it as sent.

    This is the one place a message body is shown (contract §6): the console
    backend exists so that a developer can read what would have been sent.
    """

    async def send(self, sms: OutgoingSms) -> Accepted:
        """Log `sms` on one line and accept it under a local `console-…` id."""
        logger.info("sms to %s (message %s): %s", mask_phone(sms.to), sms.message_id, sms.body)
        return Accepted(provider_id=f"console-{uuid.uuid4().hex}", status="sent")

    async def find(self, sms: OutgoingSms, *, since: datetime) -> Accepted | None:
        """Nothing to reconcile: a console send cannot be interrupted half-way."""
        return None

    async def aclose(self) -> None:
        """Nothing to release."""
