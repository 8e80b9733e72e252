"""`[privacy]` (contract §19): the secret keys of the hash an erased number's STOP is kept under.

An erasure overwrites a patient's number everywhere, except that a STOP (or `STOP <WORD>`) it
said must still hold should the number come back with another patient. The opt-out rows keep
an HMAC-SHA256 of the number instead (`storage.numbers`): the first key hashes, every key is
tried, so a new key can be put first and the old one dropped once no row needs it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, SecretStr, field_validator

MIN_KEY_CHARACTERS = 32


class PrivacySettings(BaseModel):
    """`[privacy]`: `number_keys` (env `AFTERCARE_PRIVACY__NUMBER_KEYS`, a JSON list)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    number_keys: list[SecretStr] = []

    @field_validator("number_keys")
    @classmethod
    def _strong(cls, value: list[SecretStr]) -> list[SecretStr]:
        for i, key in enumerate(value):
            if len(key.get_secret_value()) < MIN_KEY_CHARACTERS:
                raise ValueError(f"key {i} is shorter than {MIN_KEY_CHARACTERS} characters")
        if len({k.get_secret_value() for k in value}) != len(value):
            raise ValueError("the keys must differ")
        return value

    def keys(self) -> list[bytes]:
        """The keys as HMAC takes them, the hashing one first."""
        return [k.get_secret_value().encode() for k in self.number_keys]
