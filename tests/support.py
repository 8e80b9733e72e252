"""Test helpers: a movable clock, settings and signed events with `**overrides`."""

from __future__ import annotations

import base64
import json
import re
import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlmodel import Session
from standardwebhooks import Webhook

from service.config import Settings
from service.storage import store
from service.storage.models import Message, Status
from service.storage.transactions import Transactions
from service.web.keys import TRANSACTIONS

SECRET = "whsec_" + base64.b64encode(b"aftercare-test-secret-0123456789").decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"aftercare-old-secret-9876543210").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"someone-elses-secret-0000000000").decode()
TOKEN = "token-glow"
OTHER_TOKEN = "token-other"
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
        "clinics": {
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
        },
        "protocols": {
            "mn": {
                "title": "Micro-needling",
                "default_serum": "hyaluronic acid serum",
                "steps": [
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
                ],
            },
        },
    }
    for name, values in sections.items():
        if isinstance(data.get(name), dict) and name not in ("clinics", "protocols"):
            data[name] = {**data[name], **values}
        else:
            data[name] = values
    return data


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


def completed_event(**overrides: Any) -> dict[str, Any]:
    """A treatment.completed body; `treatment=` and `patient=` merge into their parts."""
    now = datetime.now(UTC)
    treatment = {
        "id": "tr_" + uuid.uuid4().hex[:8],
        "protocol": "mn",
        "completed_at": now.isoformat(),
        "session_number": 1,
        "sessions_planned": 3,
        "serum": "hyaluronic acid serum",
    }
    patient = {
        "id": "pt_77",
        "first_name": "Ana",
        "phone": PHONE,
        "timezone": "America/Los_Angeles",
        "locale": "en",
        "sms_consent": True,
    }
    treatment.update(overrides.pop("treatment", {}))
    patient.update(overrides.pop("patient", {}))
    body = {
        "type": "treatment.completed",
        "timestamp": now.isoformat(),
        "data": {"treatment": treatment, "patient": patient},
    }
    body.update(overrides)
    return body


def signed(
    body: bytes | str,
    *,
    secret: str = SECRET,
    msg_id: str | None = None,
    at: datetime | None = None,
) -> dict[str, str]:
    """Standard Webhooks headers signing `body`."""
    text = body.decode() if isinstance(body, bytes) else body
    msg_id = msg_id or "msg_" + secrets.token_hex(8)
    at = at or datetime.now(UTC)
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, text),
    }


def encode(body: dict[str, Any]) -> bytes:
    """The JSON bytes of a body."""
    return json.dumps(body).encode()


def cancelled_event(treatment_id: str, **overrides: Any) -> dict[str, Any]:
    """A treatment.cancelled body for `treatment_id`; keywords replace top-level fields."""
    body: dict[str, Any] = {
        "type": "treatment.cancelled",
        "timestamp": datetime.now(UTC).isoformat(),
        "data": {"treatment": {"id": treatment_id}},
    }
    body.update(overrides)
    return body


def patient_updated_event(patient_id: str = "pt_77", **fields: Any) -> dict[str, Any]:
    """A patient.updated body for `patient_id` giving `fields` (phone, first_name, ...)."""
    return {
        "type": "patient.updated",
        "timestamp": datetime.now(UTC).isoformat(),
        "data": {"patient": {"id": patient_id, **fields}},
    }


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for an API token."""
    return {"Authorization": f"Bearer {token}"}


async def post_event(
    client: Any,
    body: dict[str, Any],
    *,
    clinic: str = "glow",
    secret: str = SECRET,
    msg_id: str | None = None,
) -> Any:
    """POST a signed event to a clinic's events path; the response."""
    raw = encode(body)
    return await client.post(
        f"/v1/clinics/{clinic}/events", data=raw, headers=signed(raw, secret=secret, msg_id=msg_id)
    )


async def post_completed(
    client: Any, treatment: dict[str, Any], patient: dict[str, Any] | None = None, **post: Any
) -> Any:
    """POST a treatment.completed with these fields of its treatment and patient
    (`completed_event`; `post` as `post_event` takes) and check it was accepted (202); the
    answer's body."""
    body = completed_event(treatment=treatment, patient=patient or {})
    response = await post_event(client, body, **post)
    assert response.status == 202, await response.text()
    return await response.json()


async def treatment_messages(client: Any, treatment_id: str = "tr_1") -> dict[str, dict[str, Any]]:
    """The treatment's messages as the read API shows them, by id."""
    url = f"/v1/clinics/glow/treatments/{treatment_id}"
    found = await (await client.get(url, headers=bearer(TOKEN))).json()
    return {m["id"]: m for m in found["messages"]}


async def move_message(client: Any, message_id: str, *statuses: Status) -> None:
    """Drive a stored message through `statuses` as the dispatcher would, history and all."""

    def move(s: Session) -> None:
        found = s.get(Message, message_id)
        assert found is not None
        current = Status(found.status)
        for status in statuses:
            assert store.move(
                s,
                message_id,
                to=status,
                now=datetime.now(UTC),
                allowed_from=[current],
                detail="test",
            )
            current = status

    await client.app[TRANSACTIONS].write(move)


@contextmanager
def statements(transactions: Transactions) -> Iterator[list[str]]:
    """The SQL statements the writer of `transactions` runs inside the block."""
    engine = transactions.engine
    seen: list[str] = []

    def hook(*args: Any) -> None:
        seen.append(args[2])

    event.listen(engine, "before_cursor_execute", hook)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", hook)


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text (labels in any order), or None."""
    for line in text.splitlines():
        match = re.fullmatch(r"([a-z_]+)(?:\{(.*)\})? (\S+)", line)
        if (
            match
            and match[1] == name
            and dict(re.findall(r'(\w+)="([^"]*)"', match[2] or "")) == labels
        ):
            return float(match[3])
    return None
