"""The keyed hash an erased number's opt-outs are kept under (contract §19, `[privacy]`).

An opt-out row (`opt_out`, `kind_opt_out`) names its number in full until the patient is
erased; then, unless another patient of the clinic still has that number, it names the
number's hash instead: `h:` and 18 characters of the base64url HMAC-SHA256 of the number under
the first key (108 bits: no two numbers meet; 20 characters: the width of the column). Every
check of a number asks for the number and its hash under each key (`forms`), so a STOP said
before the erasure still holds, and a rotated key still finds the rows it hashed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

PREFIX = "h:"
WIDTH = 18  # base64 characters of the digest kept


def digest(key: bytes, phone: str) -> str:
    """The stored form of `phone` under `key`."""
    mac = hmac.new(key, phone.encode(), hashlib.sha256).digest()
    return PREFIX + base64.urlsafe_b64encode(mac).decode()[:WIDTH]


def forms(keys: Sequence[bytes], phone: str) -> list[str]:
    """Every form an opt-out of `phone` may be stored in: the number, then its hashes."""
    return [phone, *(digest(key, phone) for key in keys)]
