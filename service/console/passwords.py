"""Staff passwords: at least 12 characters, stored as argon2id hashes (argon2-cffi's defaults).

Hashing costs tens of milliseconds and 64 MiB: it runs on a thread, a few at a time, never on
the event loop. An unknown email is verified against a dummy hash so that its answer takes as
long as a wrong password's (timing tells nothing of which emails exist).
"""

from __future__ import annotations

import asyncio
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 12
CONCURRENT = 2  # hashes at once: each takes 64 MiB and a core for its time


class PasswordTooShort(ValueError):
    """Raised for a password shorter than MIN_LENGTH characters."""


def check_length(password: str) -> None:
    """Raise PasswordTooShort unless `password` has at least MIN_LENGTH characters."""
    if len(password) < MIN_LENGTH:
        raise PasswordTooShort(f"a password needs at least {MIN_LENGTH} characters")


def generate() -> str:
    """A random password (20 URL-safe characters, about 120 bits)."""
    return secrets.token_urlsafe(15)


class Passwords:
    """Hashing and verifying, off the event loop."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self.hasher = hasher or PasswordHasher()  # argon2id
        self._dummy: str | None = None
        self._turns = asyncio.Semaphore(CONCURRENT)

    def hash(self, password: str) -> str:
        """The argon2id hash of `password` (synchronous: for the CLI)."""
        check_length(password)
        return self.hasher.hash(password)

    async def verify(self, stored: str | None, password: str) -> bool:
        """Whether `password` matches `stored`; with None, the same work against a dummy hash,
        and False."""
        async with self._turns:
            if self._dummy is None:
                self._dummy = await asyncio.to_thread(self.hasher.hash, generate())
            against = self._dummy if stored is None else stored
            good = await asyncio.to_thread(self._matches, against, password)
        return good and stored is not None

    def _matches(self, stored: str, password: str) -> bool:
        try:
            return self.hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    async def rehashed(self, stored: str, password: str) -> str | None:
        """A new hash of `password` when `stored` used weaker parameters than today's; else
        None (after a good sign-in only)."""
        if not self.hasher.check_needs_rehash(stored):
            return None
        async with self._turns:
            return await asyncio.to_thread(self.hasher.hash, password)
