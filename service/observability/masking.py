"""Masking of phone numbers for logs and error details (design invariant 8).

Only the last four digits of a number are ever shown; the mask has a fixed
width so that it does not reveal the number's length either.
"""

from __future__ import annotations

import re

MASK = "•" * 7

# A "+" and six or more digits: E.164, the form every number takes in this service and in
# Twilio's error messages. Looser patterns would mangle timestamps and ids in the logs.
_PHONE_IN_TEXT = re.compile(r"\+\d{6,}")


def mask_phone(phone: str) -> str:
    """`phone` reduced to a fixed mask and its last four digits, e.g. `•••••••0123`."""
    digits = [char for char in phone if char.isdigit()]
    if len(digits) <= 4:  # showing four of four digits would show the whole number
        return MASK
    return MASK + "".join(digits[-4:])


def mask_phones(text: str) -> str:
    """`text` with every phone-number-like run of digits masked by `mask_phone`."""
    return _PHONE_IN_TEXT.sub(lambda match: mask_phone(match.group()), text)
