"""The OpenAPI document describes the live service: schemathesis sends generated requests to
a real `aftercare serve` and checks that none answers 5xx and every answer matches."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate

from service.openapi import document
from tests.fakes.twilio import free_port
from tests.processes import ROOT
from tests.support import SECRET, TOKEN

schema = schemathesis.openapi.from_dict(document())
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
]


def config(port: int, db: Path) -> str:
    return f"""
[server]
public_base_url = "http://127.0.0.1:{port}"
[database]
url = "sqlite+aiosqlite:///{db}"
[twilio]
auth_token = "openapi-token"
[clinics.glow]
name = "Glow"
timezone = "UTC"
from_number = "+14155550100"
webhook_secrets = ["{SECRET}"]
api_tokens = ["{TOKEN}"]
[protocols.mn]
title = "MN"
[[protocols.mn.steps]]
key = "tonight"
kind = "aftercare"
after = "2h"
text = "Hi {{first_name}}."
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running `aftercare serve` (console backend, SQLite); its base URL."""
    work = tmp_path_factory.mktemp("openapi")
    port = free_port()
    (work / "aftercare.toml").write_text(config(port, work / "aftercare.db"))
    log = (work / "service.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "service", "--config", str(work / "aftercare.toml"), "serve",
         "--port", str(port)], cwd=ROOT, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not _ready(base):
        assert process.poll() is None and time.monotonic() < deadline, "service did not start"
        time.sleep(0.1)
    yield base
    process.terminate()
    process.wait(timeout=20)
    log.close()


def _ready(base: str) -> bool:
    try:
        with urllib.request.urlopen(base + "/readyz", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


class TestDocument:
    def test_is_a_valid_openapi_3_1_document(self) -> None:
        """The document validates against the OpenAPI 3.1 schema."""
        validate(document())

    def test_is_served_at_openapi_json(self, live: str) -> None:
        """GET /openapi.json returns the document."""
        with urllib.request.urlopen(live + "/openapi.json", timeout=5) as response:
            assert json.loads(response.read()) == document()


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_5xx_and_every_answer_matches_the_schema(case: schemathesis.Case, live: str) -> None:
    """Generated requests, with and without a valid token, never break the service."""
    case.call_and_validate(base_url=live, headers={"Authorization": f"Bearer {TOKEN}"},
                           checks=CHECKS)
