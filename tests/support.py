"""Test helpers: the test clinics' secrets, tokens and numbers, a movable clock, and settings
with `**sections` (signed events: tests.helpers.events; requests: tests.helpers.client)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from service.config import Settings

SECRET = "whsec_" + base64.b64encode(b"aftercare-test-secret-0123456789").decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"aftercare-old-secret-9876543210").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"someone-elses-secret-0000000000").decode()
TOKEN = "token-glow-0123456789abcdefghijklmnopqrstuv"
OTHER_TOKEN = "token-other-0123456789abcdefghijklmnopqrs"
PHONE = "+14155550123"
FROM = "+14155550100"


class FakeClock:
    """A clock that stands still until a test moves it."""

    def __init__(self, now: datetime | None = None) -> None:
        self.current = now or datetime(2026, 11, 25, 15, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> None:
        self.current += delta


def config_data(db: Path | str, **sections: dict[str, Any]) -> dict[str, Any]:
    """A complete configuration as a dict for database `db` (an SQLite file or a URL); each
    keyword replaces or extends a section."""
    data: dict[str, Any] = {
        "server": {"public_base_url": "http://127.0.0.1:8080"},
        "database": {"url": db if isinstance(db, str) else f"sqlite+aiosqlite:///{db}"},
        "sms": {"backend": "console"},
        "twilio": {"request_timeout": "2s"},  # claim_lease 5s must outlast two requests
        "scheduler": {
            "retry_initial_delay": "1s",
            "retry_max_delay": "4s",
            "claim_lease": "5s",
            "poll_interval": "1s",
        },
        "clinics": _clinics(),
        "protocols": {
            "mn": {
                "title": "Micro-needling",
                "default_serum": "hyaluronic acid serum",
                "steps": _micro_needling_steps(),
            },
        },
    }
    for name, values in sections.items():
        if isinstance(data.get(name), dict) and name not in ("clinics", "protocols"):
            data[name] = {**data[name], **values}
        else:
            data[name] = values
    return data


def _clinics() -> dict[str, Any]:
    """config_data's clinics: "glow" in Los Angeles (English), "other" in Berlin (German)."""
    return {
        "glow": {
            "name": "Glow Skin Studio",
            "timezone": "America/Los_Angeles",
            "locale": "en",
            "from_number": FROM,
            "webhook_secrets": [SECRET, OLD_SECRET],
            "api_tokens": [TOKEN],
            "help_text": "Glow help: call (415) 555-0100.",
        },
        "other": {
            "name": "Other Clinic",
            "timezone": "Europe/Berlin",
            "locale": "de",
            "from_number": "+4915112345678",
            "webhook_secrets": [OTHER_SECRET],
            "api_tokens": [OTHER_TOKEN],
        },
    }


def _micro_needling_steps() -> list[dict[str, Any]]:
    """The steps of config_data's protocol "mn": tonight's note, two days of serum, rebooking."""
    return [
        {
            "key": "tonight",
            "kind": "aftercare",
            "after": "2h",
            "expires_after": "3h",
            "text": {
                "en": "Hi {first_name}, no makeup for 24 hours.",
                "de": "Hallo {first_name}, 24 Stunden kein Make-up.",
            },
        },
        {
            "key": "serum",
            "kind": "serum",
            "days": "1-2",
            "at": ["08:30", "20:30"],
            "text": {
                "en": "Time for your {serum}, {first_name}.",
                "de": "Zeit für Ihr {serum}, {first_name}.",
            },
        },
        {
            "key": "next",
            "kind": "rebook",
            "after": "4w",
            "only_if": "more_sessions_planned",
            "text": {
                "en": "Book session {next_session_number} of {sessions_planned}.",
                "de": "Buchen Sie Sitzung {next_session_number}.",
            },
        },
    ]


def make_settings(db: Path | str, **sections: dict[str, Any]) -> Settings:
    """Validated settings from `config_data`."""
    return Settings.model_validate(config_data(db, **sections))


QUICK = {
    "title": "Quick",
    "steps": [
        {
            "key": "first",
            "kind": "aftercare",
            "after": "1s",
            "text": "Hi {first_name}, first note.",
        },
    ],
}


def glow_in_utc(**overrides: Any) -> dict[str, Any]:
    """Clinic "glow" in UTC, English, with no quiet hours: messages go out when they fall due."""
    return {
        "name": "Glow",
        "timezone": "UTC",
        "locale": "en",
        "from_number": FROM,
        "webhook_secrets": [SECRET],
        "api_tokens": [TOKEN],
        "quiet_hours": {"start": "00:00", "end": "00:00"},
        **overrides,
    }


def quick_settings(db: Path | str) -> Settings:
    """One clinic, "glow", in UTC without quiet hours, and a protocol "quick" of one step due
    a second after the treatment."""
    return make_settings(
        db,
        clinics={"glow": glow_in_utc()},
        protocols={"quick": QUICK},
    )
