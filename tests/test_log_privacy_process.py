"""No personal data in the log when a database statement fails (contract §19), against the real
`aftercare serve` process: the database is made to refuse the very rows that carry a patient's
words, first name and number (on SQLite a trigger that raises, on PostgreSQL a CHECK whose
error quotes the failing row), a patient's reply and a clinic's event are posted, both fail,
and the whole log is searched for the words, the names and the digits.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from aiohttp import ClientSession
from sqlalchemy.engine import make_url

from service.observability.logs import JsonFormatter
from tests.fakes.twilio import AUTH_TOKEN, message_sid, sign_twilio
from tests.fakes.twilio_process import fake_twilio_process
from tests.fixtures.conversations import CARE
from tests.helpers.events import completed_event, encode, signed
from tests.helpers.ports import free_port
from tests.helpers.toml import to_toml
from tests.processes import Service, process_config, until_async
from tests.support import FROM, SECRET

ZORA = {"id": "pt_zora", "first_name": "Zorabella", "phone": "+14155559876"}
QUILL = {"id": "pt_quill", "first_name": "Quillon", "phone": "+14155559865"}
WORDS = "Zorabella here: my face is swollen with pus after the microneedling"
SECRETS = ("Zorabella", "Quillon", "swollen with pus", "415555987", "415555986")

SQLITE_REFUSALS = (
    "CREATE TRIGGER refuse_reply BEFORE INSERT ON inbound"
    " WHEN NEW.body LIKE '%swollen%' BEGIN SELECT RAISE(ABORT, 'refused by test'); END",
    "CREATE TRIGGER refuse_patient BEFORE INSERT ON patient"
    " WHEN NEW.first_name = 'Quillon' BEGIN SELECT RAISE(ABORT, 'refused by test'); END",
)
# PostgreSQL's error for these quotes the whole failing row: "Failing row contains (…)".
PG_REFUSALS = (
    "ALTER TABLE inbound ADD CONSTRAINT refuse_reply CHECK (body NOT LIKE '%swollen%') NOT VALID",
    "ALTER TABLE patient ADD CONSTRAINT refuse_patient CHECK (first_name <> 'Quillon') NOT VALID",
)
PG_UNDO = (
    "ALTER TABLE inbound DROP CONSTRAINT IF EXISTS refuse_reply",
    "ALTER TABLE patient DROP CONSTRAINT IF EXISTS refuse_patient",
)


async def refuse(database: str, statements: tuple[str, ...]) -> None:
    """Run DDL beside the running service: sqlite3 on the file, asyncpg on the database."""
    url = make_url(database)
    if url.get_backend_name() == "sqlite":
        with sqlite3.connect(str(url.database)) as conn:
            for statement in statements:
                conn.execute(statement)
        return
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture
async def setup(tmp_path: Path, database: str) -> AsyncIterator[tuple[Service, ClientSession]]:
    async with fake_twilio_process() as twilio_url, ClientSession() as http:
        port = free_port()
        data = process_config(port, twilio_url, database, steps=1)
        data["protocols"] = {"care": CARE}
        config = tmp_path / "aftercare.toml"
        config.write_text(to_toml(data))
        service = Service(config, port, tmp_path / "service.log")
        try:
            yield service, http
        finally:
            service.stop()
            if not database.startswith("sqlite"):
                await refuse(database, PG_UNDO)


async def post_event(http: ClientSession, service: Service, patient: dict[str, str]) -> Any:
    completed = datetime.now(UTC) - timedelta(hours=2)
    event = completed_event(
        treatment={"protocol": "care", "completed_at": completed.isoformat()},
        patient={"timezone": "UTC", **patient},
    )
    raw = encode(event)
    url = f"{service.base}/v1/clinics/glow/events"
    async with http.post(url, data=raw, headers=signed(raw, secret=SECRET)) as response:
        return response.status, event


async def post_reply(http: ClientSession, service: Service, body: str, sender: str) -> int:
    params = {"MessageSid": message_sid(), "From": sender, "To": FROM, "Body": body}
    url = service.base + "/v1/twilio/inbound"
    headers = {"X-Twilio-Signature": sign_twilio(AUTH_TOKEN, url, params)}
    async with http.post(url, data=params, headers=headers) as response:
        return response.status


async def test_failing_statements_log_no_words_names_or_numbers(setup: Any, database: str) -> None:
    """A reply and an event whose rows the database refuses: both answered 500, both logged
    as errors, and the log holds none of the reply's words, the first names or the digits."""
    service, http = setup
    await service.start(http)
    status, event = await post_event(http, service, ZORA)
    assert status == 202

    async def checked_in() -> bool:
        found = await service.statuses(http, event["data"]["treatment"]["id"])
        return found[0] in ("sent", "delivered")

    await until_async(checked_in)
    await refuse(database, SQLITE_REFUSALS if database.startswith("sqlite") else PG_REFUSALS)
    assert await post_reply(http, service, WORDS, ZORA["phone"]) == 500
    assert (await post_event(http, service, QUILL))[0] == 500
    service.stop()
    text = service.log.read_text()
    assert text.count('"level": "error"') >= 2, text  # both failures were logged
    assert "text withheld" in text
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} is in the log"
    assert not re.search(r"\+\d{7,}", text), "an unmasked phone number was logged"


def test_a_database_errors_text_is_withheld_its_code_and_statement_kept() -> None:
    """The formatter: a real SQLite CHECK failure that quotes the refused value is logged by
    type, error name, statement (placeholders) and traceback; another error as usual."""
    engine = sa.create_engine("sqlite://")
    with engine.connect() as conn:
        conn.exec_driver_sql(f"CREATE TABLE t (x TEXT CHECK (x <> '{WORDS}'))")
        try:
            conn.execute(sa.text("INSERT INTO t VALUES (:x)"), {"x": WORDS})
        except sa.exc.IntegrityError:
            record = logging.makeLogRecord({"msg": "failed", "exc_info": sys.exc_info()})
    logged = json.loads(JsonFormatter().format(record))["exception"]
    assert "swollen" not in logged
    assert "sqlite3.IntegrityError: (text withheld" in logged
    assert "code SQLITE_CONSTRAINT_CHECK" in logged
    assert "statement INSERT INTO t VALUES (?)" in logged
    assert "Traceback (most recent call last):" in logged and "conn.execute(" in logged
    try:
        raise ValueError("not a database's")
    except ValueError:
        record = logging.makeLogRecord({"msg": "failed", "exc_info": sys.exc_info()})
    assert "ValueError: not a database's" in JsonFormatter().format(record)
