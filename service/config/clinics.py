"""`[clinics.X]`: one clinic's name, zone and locale, its senders, the secrets and tokens that
guard its events and its read API, its rate, quiet hours and notifications; who hears of an
escalation (`ClinicEscalationFields`, service.config.conversations) sits flat in the same table.
"""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from service.config.conversations import ClinicEscalationFields, e164
from service.config.edge import ApiToken, RateLimit, WebhookSecret
from service.config.fields import Clock, Section
from service.config.notifications import ClinicNotifications, whsec_secrets
from service.planning.timing import DEFAULT_QUIET_HOURS, QuietHours, zone


class QuietHoursSettings(Section):
    start: Clock
    end: Clock

    def value(self) -> QuietHours:
        """The pure-planning view of this window."""
        return QuietHours(self.start, self.end)


class ClinicSettings(Section, ClinicEscalationFields):
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
    notifications: ClinicNotifications | None = None  # Contract §11; none: nothing is recorded

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
