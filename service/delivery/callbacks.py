"""Twilio's status callbacks as they arrive: what each one says. They are kept and applied in
batches by `storage.callback_rows` (the return path writes them)."""

from __future__ import annotations

from service.storage.callback_rows import Callback as Callback
from service.storage.callback_rows import Outcome as Outcome

INT32 = 2**31 - 1  # error_code is an INTEGER column


def error_code(text: str) -> int | None:
    """Twilio's ErrorCode as stored: ASCII digits that fit the column, else none ("²" is a
    digit to `str.isdigit` and not to `int`)."""
    return int(text) if text.isascii() and text.isdigit() and int(text) <= INT32 else None
