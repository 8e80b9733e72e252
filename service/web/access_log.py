"""The access log, without the line for each accepted Twilio status callback.

Twilio posts two to four status callbacks for every message sent; logged one line each, they
were most of the log and a visible share of the event loop's time (formatting, masking,
writing; docs/benchmarks.md) while saying nothing `aftercare_callbacks_total` does not. A
callback that is refused, fails or is slow to answer is still logged, and with
`log_level = "DEBUG"` every one is.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp.web_log import AccessLogger

STATUS_PATH = "/v1/twilio/status"
SLOW = 1.0  # seconds: a callback answered slower than this is logged


class AccessLog(AccessLogger):
    """aiohttp's access logger, skipping accepted, prompt status callbacks."""

    def log(self, request: Any, response: Any, time: float) -> None:
        """Log the request unless it is an accepted, prompt status callback."""
        if (
            response.status < 300
            and time < SLOW
            and request.path == STATUS_PATH
            and not self.logger.isEnabledFor(logging.DEBUG)
        ):
            return
        super().log(request, response, time)
