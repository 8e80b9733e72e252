"""Typed, validated, frozen settings: the whole file (`Settings`) and its smaller sections;
`[clinics.X]` and `[protocols.X]` are in service.config.clinics and service.config.protocols.

`service.config.loading` reads the file and the environment into them.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from service.config.clinics import ClinicSettings
from service.config.conversations import SmsSettings
from service.config.edge import https_unless_loopback
from service.config.environment import DELIMITER, PREFIX
from service.config.fields import Duration, Section
from service.config.notifications import NotificationSettings
from service.config.privacy import PrivacySettings
from service.config.protocols import ProtocolSettings
from service.config.retention import RetentionSettings
from service.planning.protocols import Protocol
from service.planning.timing import parse_duration

FALLBACK_CONFIG = Path("config.example.toml")


class ServerSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    public_base_url: str = "http://127.0.0.1:8080"
    max_body_bytes: int = Field(65536, ge=1024, le=16 * 1024 * 1024)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # The edge (docs/edge.md): a body must arrive whole this long after its headers, and no
    # more than this many connections are open at once.
    body_timeout: Duration = Field(
        timedelta(seconds=15), ge=timedelta(seconds=1), le=timedelta(minutes=10)
    )
    max_connections: int = Field(1000, ge=1, le=100_000)
    # The console's throttling by address (docs/console-operators.md): behind a reverse proxy
    # that sets X-Forwarded-For, its last entry is the client's; else only the peer counts.
    trust_forwarded_for: bool = False
    # Processes serving this port, each a replica on the same database (docs/workers.md):
    # "auto" is one per core the process may run on. One (the default) is the process of old.
    workers: Annotated[int, Field(ge=1, le=64)] | Literal["auto"] = 1

    def worker_count(self) -> int:
        """How many worker processes `serve` runs."""
        if self.workers != "auto":
            return self.workers
        if hasattr(os, "sched_getaffinity"):  # Linux: the cores this process may use
            return max(1, len(os.sched_getaffinity(0)))
        return os.cpu_count() or 1

    @field_validator("public_base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return https_unless_loopback(value).rstrip("/")


class DatabaseSettings(Section):
    url: str = "sqlite+aiosqlite:///./aftercare.db"
    migrate_on_start: bool = True

    @field_validator("url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("use sqlite+aiosqlite:///PATH or postgresql+asyncpg://...")
        return value


DEFAULT_REQUEST_TIMEOUT = timedelta(seconds=10)


def _lease(scheduler: Any) -> timedelta | None:
    """The claim lease the raw `[scheduler]` table sets, if it sets a readable one."""
    raw = scheduler.get("claim_lease") if isinstance(scheduler, dict) else None
    if isinstance(raw, str):
        try:
            return parse_duration(raw)
        except ValueError:
            return None  # the field's own validation names the problem
    return raw if isinstance(raw, timedelta) else None


class TwilioSettings(Section):
    account_sid: str = ""
    auth_token: SecretStr = SecretStr("")
    api_base_url: str = "https://api.twilio.com"
    messaging_service_sid: str = ""
    request_timeout: Duration = DEFAULT_REQUEST_TIMEOUT  # or half a shorter lease (Settings)
    # Photos (contract §17): the hosts Twilio's media redirect may lead to, and Twilio's copy
    # deleted once ours is kept.
    media_hosts: list[str] = [  # noqa: RUF012 (a pydantic field: copied per model)
        "mms.twiliocdn.com",
        "media.twiliocdn.com",
        "s3-external-1.amazonaws.com",
    ]
    delete_media: bool = True


class SchedulerSettings(Section):
    default_expires_after: Duration = timedelta(hours=6)
    retry_initial_delay: Duration = timedelta(seconds=5)
    retry_max_delay: Duration = timedelta(minutes=10)
    claim_lease: Duration = timedelta(seconds=60)
    horizon: Duration = timedelta(seconds=60)
    poll_interval: Duration = timedelta(seconds=5)
    max_concurrent_sends: int = Field(64, ge=1, le=1000)


class Settings(BaseSettings):
    """The whole configuration; its model_config is the environment rule EnvSettingsSource reads."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        env_prefix=PREFIX,
        env_nested_delimiter=DELIMITER,
        case_sensitive=False,
    )

    server: ServerSettings = ServerSettings()
    database: DatabaseSettings = DatabaseSettings()
    sms: SmsSettings = SmsSettings()
    twilio: TwilioSettings = TwilioSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    notifications: NotificationSettings = NotificationSettings()
    privacy: PrivacySettings = PrivacySettings()  # Contract §19: keys of an erased number's hash
    retention: RetentionSettings = RetentionSettings()
    clinics: dict[str, ClinicSettings] = Field(min_length=1)
    protocols: dict[str, ProtocolSettings] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _timeout_follows_a_short_lease(cls, data: Any) -> Any:
        """`twilio.request_timeout`, when the file and the environment leave it unset, is 10 s or
        half of `scheduler.claim_lease` if that is less: a short lease (a test's 5 s) is then
        valid as written, and no request outlives half a lease. Set explicitly, a timeout over
        half the lease is refused (service.config.checks)."""
        if not isinstance(data, dict):
            return data
        twilio = data.get("twilio", {})
        lease = _lease(data.get("scheduler"))
        if not isinstance(twilio, dict) or "request_timeout" in twilio or lease is None:
            return data
        timeout = min(DEFAULT_REQUEST_TIMEOUT, lease / 2)
        return {**data, "twilio": {**twilio, "request_timeout": timeout}}

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only what it is given: `model_validate` runs `__init__`, which would otherwise read
        `os.environ` and ./.env behind load_settings' back (and every test's `make_settings`)."""
        return (init_settings,)

    def protocol(self, key: str, *, locale: str) -> Protocol:
        """The pure-planning protocol `key`, plain-string texts filed under `locale`."""
        p = self.protocols[key]
        steps = tuple(s.step(locale) for s in p.steps)
        return Protocol(key=key, title=p.title, default_serum=p.default_serum, steps=steps)
