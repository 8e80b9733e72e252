"""The configuration: typed, frozen settings read from a TOML file and `AFTERCARE_*` variables.

What the rest of the service uses is imported from here (`from service.config import
Settings`); the modules behind it are:

- `settings`: `Settings`, the whole file, and its small sections (`[server]`, `[database]`,
  `[twilio]`, `[scheduler]`); `clinics` (`[clinics.X]`), `protocols` (`[protocols.X]`),
  `conversations` (`[sms]`, a check-in's replies, a clinic's escalations), `notifications`,
  `privacy`, `retention` and `edge` (secret, token and rate rules) for the rest;
- `fields`: `Duration` and `Clock`, the one reading of a duration and a time of day that every
  section uses, and `Section`, the frozen table;
- `loading`: the file and the environment into `Settings`, every problem by its path;
  `environment`: which `AFTERCARE_*` variables are settings; `checks`: problems across
  sections and within a protocol; `exposure`: the example's secrets refused off loopback;
  `addresses`: loopback and private networks (for `public_base_url`, notification URLs, and the
  notifier's check of what a name resolves to).
"""

from service.config.addresses import is_loopback, is_private, literal
from service.config.clinics import ClinicSettings, QuietHoursSettings
from service.config.conversations import SmsSettings, localized
from service.config.edge import Rate, parse_rate
from service.config.exposure import exposure_problems
from service.config.fields import Clock, Duration
from service.config.loading import (
    Loaded,
    fell_back,
    from_environment,
    load_settings,
    resolve_config_path,
)
from service.config.notifications import (
    DEFAULT_TYPES,
    TYPES,
    ClinicNotifications,
    NotificationSettings,
)
from service.config.privacy import PrivacySettings
from service.config.protocols import ProtocolSettings, StepSettings
from service.config.retention import RetentionSettings
from service.config.settings import (
    FALLBACK_CONFIG,
    DatabaseSettings,
    SchedulerSettings,
    ServerSettings,
    Settings,
    TwilioSettings,
)

__all__ = [
    "DEFAULT_TYPES",
    "FALLBACK_CONFIG",
    "TYPES",
    "ClinicNotifications",
    "ClinicSettings",
    "Clock",
    "DatabaseSettings",
    "Duration",
    "Loaded",
    "NotificationSettings",
    "PrivacySettings",
    "ProtocolSettings",
    "QuietHoursSettings",
    "Rate",
    "RetentionSettings",
    "SchedulerSettings",
    "ServerSettings",
    "Settings",
    "SmsSettings",
    "StepSettings",
    "TwilioSettings",
    "exposure_problems",
    "fell_back",
    "from_environment",
    "is_loopback",
    "is_private",
    "literal",
    "load_settings",
    "localized",
    "parse_rate",
    "resolve_config_path",
]
