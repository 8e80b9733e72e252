"""What the console needs from the app, in one object the app factory builds (`Console`), and
the typed keys it is found under. The console never reads `service.web`'s keys."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web

from service.clock import Clock
from service.config import Settings
from service.console.passwords import Passwords
from service.observability.metrics import Metrics
from service.storage.transactions import Transactions


@dataclass(frozen=True, kw_only=True)
class Console:
    """The console's dependencies.

    `arm(due_at)` wakes the dispatcher at `due_at` (a staff text due now or at the end of the
    patient's quiet hours); `passwords` hashes and verifies (argon2id, off the event loop)."""

    settings: Settings
    transactions: Transactions
    clock: Clock
    metrics: Metrics
    arm: Callable[[datetime], None]
    passwords: Passwords

    @property
    def secure_cookies(self) -> bool:
        """Whether cookies carry `Secure`: whenever the public base URL is https."""
        return self.settings.server.public_base_url.startswith("https://")


CONSOLE = web.AppKey("console", Console)
