"""The outbox: a notification is written in the transaction of the change it reports."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlmodel import Session, select

from service.config import DEFAULT_TYPES, Settings
from service.storage.outbox import Notification, record
from service.storage.transactions import Transactions
from tests.support import OTHER_SECRET, config_data, glow_in_utc

NOW = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)
HOOK = {"url": "http://127.0.0.1:9/hooks", "secrets": [OTHER_SECRET]}


def _settings(db: Path | str, **notifications: Any) -> Settings:
    data = config_data(db)
    data["clinics"] = {
        "glow": glow_in_utc(notifications=notifications) if notifications else glow_in_utc()
    }
    return Settings.model_validate(data)


@pytest.fixture
async def transactions(database: str) -> AsyncIterator[Transactions]:
    opened = Transactions.open(database)
    yield opened
    await opened.close()


def _all(s: Session) -> list[Notification]:
    return list(s.exec(select(Notification)).all())


def _record(settings: Settings, type_: str) -> Any:
    def work(s: Session) -> str | None:
        data = {"message": {"id": "msg_1", "status": "failed"}}
        return record(s.connection(), settings, clinic_id="glow", type_=type_, data=data, now=NOW)

    return work


async def test_a_wanted_notification_is_a_pending_row_with_its_body_frozen(
    transactions: Transactions, database: str
) -> None:
    nid = await transactions.write(_record(_settings(database, **HOOK), "message.failed"))
    [row] = await transactions.read(_all)
    assert nid is not None and row.id == nid and nid.startswith("ntf_")
    assert (row.state, row.attempts, row.due_at, row.clinic_id) == ("pending", 0, NOW, "glow")
    assert json.loads(row.body) == {
        "type": "message.failed",
        "timestamp": "2026-11-28T15:00:00Z",
        "data": {"message": {"id": "msg_1", "status": "failed"}},
    }


async def test_nothing_is_written_for_a_type_not_asked_for_or_a_clinic_without_endpoint(
    transactions: Transactions, database: str
) -> None:
    assert await transactions.write(_record(_settings(database), "message.failed")) is None
    by_default = _settings(database, **HOOK)
    assert await transactions.write(_record(by_default, "message.delivered")) is None
    assert await transactions.read(_all) == []


async def test_a_change_that_rolls_back_takes_its_notification_with_it(
    transactions: Transactions, database: str
) -> None:
    work = _record(_settings(database, **HOOK), "message.failed")

    def change_then_fail(s: Session) -> None:
        work(s)
        raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        await transactions.write(change_then_fail)
    assert await transactions.read(_all) == []


class TestConfig:
    def test_defaults_are_every_type_but_delivered(self, tmp_path: Path) -> None:
        target = _settings(tmp_path / "a.db", **HOOK).clinics["glow"].notifications
        assert target is not None and tuple(target.events) == DEFAULT_TYPES
        assert "message.delivered" not in target.events and len(DEFAULT_TYPES) == 8

    @pytest.mark.parametrize(
        ("field", "value", "says"),
        [
            ("url", "http://practice.example.com/hooks", "https"),
            ("url", "ftp://127.0.0.1/hooks", "https"),
            ("secrets", ["whsec_hunter2xx"], "whsec"),
            ("events", ["message.sent"], "unknown notification types"),
        ],
    )
    def test_refuses_what_would_leak_or_never_match(
        self, tmp_path: Path, field: str, value: Any, says: str
    ) -> None:
        with pytest.raises(ValidationError, match=says):
            _settings(tmp_path / "a.db", **{**HOOK, field: value})

    def test_https_anywhere_and_http_to_loopback_are_accepted(self, tmp_path: Path) -> None:
        for url in ("https://practice.example.com/hooks", "http://localhost:8081/h"):
            target = _settings(tmp_path / "a.db", **{**HOOK, "url": url}).clinics["glow"]
            assert target.notifications is not None and target.notifications.url == url


def test_the_example_configs_commented_endpoint_is_valid_when_uncommented(tmp_path: Path) -> None:
    """config.example.toml ships the endpoint commented out (`make run` posts nowhere); the
    lines as shown are a valid `[clinics.X.notifications]` once uncommented."""
    import tomllib

    from service.config import load_settings

    text = (Path(__file__).resolve().parents[1] / "config.example.toml").read_text()
    assert tomllib.loads(text)["clinics"]["glow-downtown"].get("notifications") is None
    start = text.index("# [clinics.glow-downtown.notifications]")
    block = text[start:].split("\n\n", 1)[0]
    uncommented = text.replace(block, "\n".join(line[2:] for line in block.splitlines()))
    (tmp_path / "c.toml").write_text(uncommented)
    settings = load_settings(tmp_path / "c.toml", environ={}).settings
    target = settings.clinics["glow-downtown"].notifications
    assert target is not None and target.wants("message.failed")
