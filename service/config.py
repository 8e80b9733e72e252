"""Typed, validated, frozen settings: the sections of the TOML file and their checks.

`service.config_loading` reads the file and the environment into them.
"""

from __future__ import annotations

from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from service.config_conversations import (
    CheckinFields,
    ClinicEscalationFields,
    SmsSettings,
    e164,
)
from service.config_edge import ApiToken, RateLimit, WebhookSecret, https_unless_loopback
from service.config_notifications import (
    ClinicNotifications,
    NotificationSettings,
    whsec_secrets,
)
from service.config_privacy import PrivacySettings
from service.config_retention import RetentionSettings
from service.environment import (
    DELIMITER,
    PREFIX,
)
from service.planning.protocols import Protocol, Step
from service.planning.steps import QuietRule, StepKind
from service.planning.timing import (
    DEFAULT_QUIET_HOURS,
    QuietHours,
    parse_clock,
    parse_days,
    parse_duration,
    zone,
)

FALLBACK_CONFIG = Path("config.example.toml")


def _duration(value: Any) -> Any:
    return parse_duration(value) if isinstance(value, str) else value


def _clock(value: Any) -> Any:
    return parse_clock(value) if isinstance(value, str) else value


Duration = Annotated[timedelta, BeforeValidator(_duration)]
Clock = Annotated[time, BeforeValidator(_clock)]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ServerSettings(_Section):
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

    @field_validator("public_base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return https_unless_loopback(value).rstrip("/")


class DatabaseSettings(_Section):
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


class TwilioSettings(_Section):
    account_sid: str = ""
    auth_token: SecretStr = SecretStr("")
    api_base_url: str = "https://api.twilio.com"
    messaging_service_sid: str = ""
    request_timeout: Duration = DEFAULT_REQUEST_TIMEOUT  # or half a shorter lease (Settings)
    # Photos (SPEC §17): the hosts Twilio's media redirect may lead to, and Twilio's copy
    # deleted once ours is kept.
    media_hosts: list[str] = [
        "mms.twiliocdn.com",
        "media.twiliocdn.com",
        "s3-external-1.amazonaws.com",
    ]
    delete_media: bool = True


class SchedulerSettings(_Section):
    default_expires_after: Duration = timedelta(hours=6)
    retry_initial_delay: Duration = timedelta(seconds=5)
    retry_max_delay: Duration = timedelta(minutes=10)
    claim_lease: Duration = timedelta(seconds=60)
    horizon: Duration = timedelta(seconds=60)
    poll_interval: Duration = timedelta(seconds=5)
    max_concurrent_sends: int = Field(64, ge=1, le=1000)


class QuietHoursSettings(_Section):
    start: Clock
    end: Clock

    def value(self) -> QuietHours:
        """The pure-planning view of this window."""
        return QuietHours(self.start, self.end)


class ClinicSettings(_Section, ClinicEscalationFields):
    name: str = Field(min_length=1)
    timezone: str
    locale: str = "en"
    from_number: str = ""
    messaging_service_sid: str = ""
    webhook_secrets: list[WebhookSecret] = Field(min_length=1)
    api_tokens: list[ApiToken] = Field(min_length=1)
    rate_limit: RateLimit = "50/s"  # events a second (or /m, /h), burst twice that
    mps: float | None = Field(None, gt=0, le=10_000)  # messages a second its sender allows
    quiet_hours: QuietHoursSettings | None = None
    help_text: str = ""
    notifications: ClinicNotifications | None = None  # SPEC §11; none: nothing is recorded

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        zone(value)
        return value

    @field_validator("from_number")
    @classmethod
    def _from(cls, value: str) -> str:
        return e164(value) if value else value

    @field_validator("webhook_secrets")
    @classmethod
    def _secrets(cls, value: list[SecretStr]) -> list[SecretStr]:
        return whsec_secrets(value)

    def quiet(self) -> QuietHours:
        """The clinic's quiet hours, or the default 21:00-08:00 when absent."""
        return self.quiet_hours.value() if self.quiet_hours else DEFAULT_QUIET_HOURS


_APPOINTMENT_DAY = "the appointment's day"


class StepSettings(_Section, CheckinFields):
    key: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    kind: StepKind
    text: str | dict[str, str]
    after: Duration | None = None
    every: Duration | None = None
    count: int | None = Field(None, ge=1, le=100)
    days: str | list[int] | None = None
    at: list[Clock] = []
    only_if: Literal["more_sessions_planned"] | None = None
    expires_after: Duration | None = None
    in_quiet_hours: QuietRule = "defer"
    before: Duration | None = None  # prep steps: once, this long before the appointment
    days_before: str | list[int] | None = None  # prep steps: local days before its day

    @field_validator("days", "days_before")
    @classmethod
    def _days(cls, value: str | list[int] | None, info: ValidationInfo) -> str | list[int] | None:
        if value is not None and info.field_name == "days_before":
            parse_days(value, origin=_APPOINTMENT_DAY)
        elif value is not None:
            parse_days(value)
        return value

    def step(self, fallback_locale: str) -> Step:
        """The pure-planning view of this step."""
        texts = {fallback_locale: self.text} if isinstance(self.text, str) else dict(self.text)
        return Step(
            key=self.key,
            kind=self.kind,
            texts=texts,
            after=self.after,
            every=self.every,
            count=self.count or 1,
            days=parse_days(self.days) if self.days is not None else (),
            at=tuple(self.at),
            only_if=self.only_if,
            expires_after=self.expires_after,
            in_quiet_hours=self.in_quiet_hours,
            before=self.before,
            days_before=(
                ()
                if self.days_before is None
                else parse_days(self.days_before, origin=_APPOINTMENT_DAY)
            ),
        )


class ProtocolSettings(_Section):
    title: str = Field(min_length=1)
    default_serum: str = "serum"
    steps: list[StepSettings] = Field(min_length=1)


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
    privacy: PrivacySettings = PrivacySettings()  # SPEC §19: keys of an erased number's hash
    retention: RetentionSettings = RetentionSettings()
    clinics: dict[str, ClinicSettings] = Field(min_length=1)
    protocols: dict[str, ProtocolSettings] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _timeout_follows_a_short_lease(cls, data: Any) -> Any:
        """`twilio.request_timeout`, when the file and the environment leave it unset, is 10 s or
        half of `scheduler.claim_lease` if that is less: a short lease (a test's 5 s) is then
        valid as written, and no request outlives half a lease. Set explicitly, a timeout over
        half the lease is refused (config_checks)."""
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
