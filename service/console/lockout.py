"""When failed sign-ins lock an account or throttle an address (pure; times in, time out).

After LIMIT failures within WINDOW, the key is refused for LOCK from the failure that made
LIMIT. Refused attempts are not counted as failures, so a lock ends when it says it will.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

LIMIT = 5
WINDOW = timedelta(minutes=15)
LOCK = timedelta(minutes=15)
LOOK_BACK = WINDOW + LOCK  # the failures that can still lock a key now


def locked_until(failures: Sequence[datetime], *, now: datetime) -> datetime | None:
    """The end of the lock `failures` (oldest first, since now - LOOK_BACK) put on their key at
    `now`; None when it is not locked."""
    for i in range(LIMIT - 1, len(failures)):
        last = failures[i]
        if last - failures[i - LIMIT + 1] <= WINDOW and now < last + LOCK:
            return last + LOCK
    return None
