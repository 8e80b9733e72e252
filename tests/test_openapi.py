"""The OpenAPI document describes the live service: schemathesis sends generated requests to
a real `aftercare serve`, events signed with the clinic's secret and Twilio's posts with the
auth token (so bodies are validated, not only refused), and checks that none answers 5xx and
every answer matches. The schemas come from the validators, and a test holds them to it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate
from twilio.request_validator import RequestValidator

from service.intake.payloads import EXAMPLE
from service.intake.series_payloads import SERIES_TYPES
from service.storage.models import Status
from service.storage.outbox import NotificationState
from service.web.openapi import OPERATIONS, document
from tests.conftest import AppClient
from tests.helpers.events import completed_event, encode, signed
from tests.helpers.ports import free_port
from tests.helpers.toml import to_toml
from tests.processes import ROOT
from tests.support import SECRET, TOKEN, make_settings

schema = schemathesis.openapi.from_dict(document())
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
]
TWILIO_TOKEN = "openapi-token"
EVENTS = "/v1/clinics/{clinic_id}/events"


def config(port: int, db: Path) -> str:
    """The live service's config: clinic `glow`, one protocol of one step, console backend."""
    glow = {
        "name": "Glow",
        "timezone": "UTC",
        "from_number": "+14155550100",
        "webhook_secrets": [SECRET],
        "api_tokens": [TOKEN],
    }
    step = {"key": "tonight", "kind": "aftercare", "after": "2h", "text": "Hi {first_name}."}
    return to_toml(
        {
            "server": {"public_base_url": f"http://127.0.0.1:{port}"},
            "database": {"url": f"sqlite+aiosqlite:///{db}"},
            "twilio": {"auth_token": TWILIO_TOKEN},
            "clinics": {"glow": glow},
            "protocols": {"microneedling": {"title": "MN", "steps": [step]}},
        }
    )


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running `aftercare serve` (console backend, SQLite); its base URL."""
    work = tmp_path_factory.mktemp("openapi")
    port = free_port()
    (work / "aftercare.toml").write_text(config(port, work / "aftercare.db"))
    log = (work / "service.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "service",
            "--config",
            str(work / "aftercare.toml"),
            "serve",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        stdout=log,
        stderr=log,
    )
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

    def test_every_operation_has_a_unique_id_and_a_known_tag(self) -> None:
        """A generated client names its functions by operationId and groups them by tag: every
        operation has both, ids are unique, and every tag is declared."""
        doc = document()
        operations = [op for ops in doc["paths"].values() for op in ops.values()]
        ids = [op["operationId"] for op in operations]
        assert len(ids) == len(set(ids)) == len(OPERATIONS)
        declared = {t["name"] for t in doc["tags"]}
        assert {t for op in operations for t in op["tags"]} == declared

    def test_schema_titles_are_their_names(self) -> None:
        """Each schema's title is its own name, so no two generate one model."""
        schemas = document()["components"]["schemas"]
        assert all(schema["title"] == name for name, schema in schemas.items())

    def test_is_served_at_openapi_json(self, live: str) -> None:
        """GET /openapi.json returns the document."""
        with urllib.request.urlopen(live + "/openapi.json", timeout=5) as response:
            assert json.loads(response.read()) == document()


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_5xx_and_every_answer_matches_the_schema(
    case: schemathesis.Case[Any], live: str
) -> None:
    """Generated requests, signed as the clinic and Twilio sign them, never break the service
    and are answered as the document says."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    extra: dict[str, Any] = {}
    if case.path_parameters and "clinic_id" in case.path_parameters:
        case.path_parameters["clinic_id"] = "glow"  # the clinic of the token and the secret
    if case.path == EVENTS and isinstance(case.body, dict | list):
        extra["data"] = json.dumps(case.body).encode()  # the bytes signed are the bytes sent
        headers.update(signed(extra["data"]))
    elif case.path.startswith("/v1/twilio/") and isinstance(case.body, dict):
        form = {str(k): str(v) for k, v in case.body.items()}
        url = live + case.path  # the live service's public_base_url is its own address
        headers["X-Twilio-Signature"] = RequestValidator(TWILIO_TOKEN).compute_signature(url, form)
        extra["data"] = form
    case.call_and_validate(base_url=live, headers=headers, checks=CHECKS, **extra)


class TestSchemasAreTheValidators:
    """The document's event schema says what the validator demands, field by field."""

    def test_answer_statuses_are_the_message_statuses(self) -> None:
        """The answers' status enum is every message status."""
        schemas = document()["components"]["schemas"]
        assert set(schemas["PlannedMessage"]["properties"]["status"]["enum"]) == set(Status)

    def test_the_notifications_endpoints_and_states_are_described(self) -> None:
        """Contract §11's list and retry are in the document (so the fuzz test calls them), and
        the states it names are the outbox's."""
        paths = document()["paths"]
        assert "get" in paths["/v1/clinics/{clinic_id}/notifications"]
        retry = paths["/v1/clinics/{clinic_id}/notifications/{notification_id}/retry"]["post"]
        assert {"200", "404", "409"} <= set(retry["responses"])
        view = document()["components"]["schemas"]["NotificationView"]
        assert set(view["properties"]["state"]["enum"]) == set(NotificationState)

    def test_the_example_event_is_spec_5s(self) -> None:
        """The document gives contract §5's example event (the fuzz test posts it: 202)."""
        schemas = document()["components"]["schemas"]
        assert schemas["TreatmentCompleted"]["examples"] == [EXAMPLE]

    @pytest.mark.parametrize("part", ["treatment", "patient"])
    async def test_each_required_field_missing_is_a_422_naming_it(
        self, make_client: Any, db_path: Path, part: str
    ) -> None:
        """Dropping a field the schema requires is refused naming it; dropping any other
        field is accepted: the schema's `required` is exactly what the validator needs."""
        client = await make_client(make_settings(db_path))
        required, optional = _fields(part)
        assert required  # the schema has a required set to compare
        for name in required | optional:
            body = completed_event()
            del body["data"][part][name]
            answer = await _post(client, body)
            if name in required:
                assert answer.status == 422, name
                fields = [e["field"] for e in (await answer.json())["errors"]]
                assert fields == [f"data.{part}.{name}"]
            else:
                assert answer.status == 202, (name, await answer.text())

    async def test_a_body_missing_its_type_is_a_422_naming_it(
        self, make_client: Any, db_path: Path
    ) -> None:
        """`type` is the discriminator the document declares, and the validator's."""
        client = await make_client(make_settings(db_path))
        body = completed_event()
        del body["type"]
        answer = await _post(client, body)
        assert answer.status == 422
        assert [e["field"] for e in (await answer.json())["errors"]] == ["type"]
        event = document()["components"]["schemas"]["Event"]
        assert event["discriminator"]["propertyName"] == "type"


def _fields(part: str) -> tuple[set[str], set[str]]:
    """The required and the optional fields of a treatment.completed body's `part`."""
    schemas = document()["components"]["schemas"]
    data = schemas["CompletedData"]["properties"][part]["$ref"].rsplit("/", 1)[1]
    schema = schemas[data]
    required = set(schema["required"])
    return required, set(schema["properties"]) - required


async def _post(client: AppClient, body: dict[str, Any]) -> Any:
    raw = encode(body)
    return await client.post("/v1/clinics/glow/events", data=raw, headers=signed(raw))


class TestSeries:
    """The series' events and the appointment read (contract §13) are in the document."""

    def test_the_events_schemas_are_the_validators(self) -> None:
        """Each series event is a branch of `Event`, its required fields the validator's."""
        schemas = document()["components"]["schemas"]
        mapping = schemas["Event"]["discriminator"]["mapping"]
        for kind in SERIES_TYPES:
            assert kind in mapping
        booked = schemas["AppointmentIn"]
        assert set(booked["required"]) == {"id", "starts_at"}
        assert schemas["TreatmentUpdate"]["required"] == ["id"]

    def test_the_appointment_is_read_with_its_messages(self) -> None:
        paths = document()["paths"]
        get = paths["/v1/clinics/{clinic_id}/appointments/{appointment_id}"]["get"]
        assert get["responses"]["200"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/AppointmentAnswer"
        }
        answers = document()["components"]["schemas"]["EventAnswer"]["discriminator"]["mapping"]
        assert {*SERIES_TYPES} <= set(answers)
