"""Notifications to clinic systems (contract §11): where each clinic wants them, and how hard to
try.

`[notifications]` holds the delivery policy for every clinic; `[clinics.X.notifications]` the
clinic's endpoint, its signing secrets and the types it wants.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
)

from service.config.addresses import is_loopback, is_private, literal
from service.config.edge import WebhookSecret
from service.config.fields import Duration

# Every type a notification may have (contract §11), in the order the contract lists them.
TYPES = (
    "checkin.escalated",
    "checkin.replied",
    "reply.received",
    "message.failed",
    "message.undelivered",
    "message.expired",
    "message.delivered",
    "patient.opted_out",
    "patient.opted_in",
    "patient.erased",  # Contract §19
)
# All but these, which a clinic asks for by listing them.
DEFAULT_TYPES = tuple(t for t in TYPES if t not in ("message.delivered", "patient.erased"))


def whsec_secrets(value: list[SecretStr]) -> list[SecretStr]:
    """`value`, when each is a Standard Webhooks secret (`whsec_` and base64), else ValueError
    naming the first that is not: for the clinic's webhook secrets and its notifications'."""
    from standardwebhooks import Webhook

    for i, secret in enumerate(value):
        try:
            Webhook(secret.get_secret_value())
        except Exception:
            raise ValueError(f"secret {i} is not a base64 'whsec_…' secret") from None
    return value


class NotificationSettings(BaseModel):
    """`[notifications]`: the delivery policy (contract §11)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout: Duration = timedelta(seconds=10)
    retry_initial_delay: Duration = timedelta(seconds=5)
    retry_max_delay: Duration = timedelta(hours=1)
    give_up_after: Duration = timedelta(hours=24)
    keep_delivered: Duration = timedelta(days=30)  # then a delivered one is deleted

    @field_validator("keep_delivered")
    @classmethod
    def _keep(cls, value: timedelta) -> timedelta:
        if value < timedelta(hours=1):
            raise ValueError("must be at least 1h")
        return value


class ClinicNotifications(BaseModel):
    """`[clinics.X.notifications]`: the clinic system's endpoint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Before `url`, whose check reads it: a private or link-local address is refused unless
    # this is true (contract §14); names are checked as they resolve, at each attempt.
    allow_private_network: bool = False
    url: str
    secrets: list[WebhookSecret] = Field(min_length=1)  # each signs (rotation without a flag day)
    events: list[str] = list(DEFAULT_TYPES)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str, info: ValidationInfo) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("must be an https:// URL (http:// only to loopback)")
        if parts.scheme == "http" and not is_loopback(parts.hostname):
            raise ValueError("must be https:// (http:// only to loopback)")
        address = literal(parts.hostname)
        allowed = info.data.get("allow_private_network", False)
        if address is not None and is_private(address) and not allowed:
            raise ValueError(
                f"{address} is a private or link-local address; set "
                "allow_private_network = true in this table if the clinic's system is "
                "really there"
            )
        return value

    @field_validator("secrets")
    @classmethod
    def _secrets(cls, value: list[SecretStr]) -> list[SecretStr]:
        return whsec_secrets(value)

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str]) -> list[str]:
        unknown = [t for t in value if t not in TYPES]
        if unknown:
            raise ValueError(f"unknown notification types {unknown}; known: {list(TYPES)}")
        return value

    def wants(self, type_: str) -> bool:
        """Whether the clinic asked for notifications of `type_`."""
        return type_ in self.events
