"""The OpenAPI 3.1 description of every endpoint (contract §5-9), served at /openapi.json."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter
from pydantic.json_schema import JsonSchemaMode

from service.intake.payloads import EVENT_BODY
from service.reads import answers, erasures
from service.reads import audit as audit_answers
from service.reads import escalations as escalation_answers
from service.reads.paging import MAX_LIMIT
from service.storage.models import Status
from service.storage.outbox import NotificationState
from service.web.openapi_conversations import audit_paths, escalation_paths, media_paths

JSON = "application/json"
PROBLEM = "application/problem+json"
REF = "#/components/schemas/{model}"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _problems(*statuses: int) -> dict[str, Any]:
    return {
        str(s): {"description": _REASONS[s], "content": {PROBLEM: {"schema": _ref("Problem")}}}
        for s in statuses
    }


def _ok(description: str, schema: str, status: str = "200") -> dict[str, Any]:
    return {status: {"description": description, "content": {JSON: {"schema": _ref(schema)}}}}


_REASONS = {
    401: "Missing or invalid signature or token, or unknown clinic",
    403: "A token of another clinic, or a forged Twilio signature",
    404: "No such resource at this clinic",
    405: "Method not allowed",
    408: "The body did not arrive within server.body_timeout",
    409: "The webhook-id was used with another body, the notification was delivered, or "
    "erasure has no [privacy] number_keys",
    413: "Body over server.max_body_bytes",
    415: "Not application/json",
    422: "A field is missing or wrong",
    429: "Over the clinic's rate_limit; retry after Retry-After seconds",
}
_CLINIC = {"name": "clinic_id", "in": "path", "required": True, "schema": {"type": "string"}}
_BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
_SECURITY = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "One of the clinic's api_tokens (contract §8)",
    },
    "standardWebhooks": {
        "type": "apiKey",
        "in": "header",
        "name": "webhook-signature",
        "description": "Standard Webhooks: `v1,` + base64 HMAC-SHA256 with one of the "
        "clinic's webhook_secrets over `{webhook-id}.{webhook-timestamp}.{body}`",
    },
    "twilioSignature": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Twilio-Signature",
        "description": "Twilio's request signature with the account's auth token, over "
        "public_base_url + path and the form fields",
    },
}


def _schemas() -> dict[str, Any]:
    """Every request and answer schema, generated from the pydantic types that validate the
    requests (validation mode) and render the answers (serialization mode)."""
    inputs: list[tuple[str, JsonSchemaMode, TypeAdapter[Any]]] = [
        ("Event", "validation", EVENT_BODY),
        *answers.json_schema_inputs(),
        *escalation_answers.json_schema_inputs(),
        *audit_answers.json_schema_inputs(),
        *erasures.json_schema_inputs(),
    ]
    top, defs = TypeAdapter.json_schemas(inputs, ref_template=REF)
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    for (name, _), schema in top.items():
        if schema != _ref(name):
            schemas[name] = schema
    # Each schema titled by its name: a generated client names its models by title, and two
    # schemas of one title became two models of one name.
    return {name: {**schema, "title": name} for name, schema in schemas.items()}


def _events_path() -> dict[str, Any]:
    # webhook-signature is the security scheme; the id and the timestamp it signs go with it.
    headers = [
        {
            "name": "webhook-id",
            "in": "header",
            "required": True,
            "description": "The event's idempotency key",
            "schema": {"type": "string", "maxLength": 255},
        },
        {
            "name": "webhook-timestamp",
            "in": "header",
            "required": True,
            "description": "Unix seconds; 5 minutes' tolerance",
            "schema": {"type": "string"},
        },
    ]
    return {
        "post": {
            "summary": "A signed clinic event (Standard Webhooks)",
            "parameters": [_CLINIC, *headers],
            "security": [{"standardWebhooks": []}],
            "requestBody": {"required": True, "content": {JSON: {"schema": _ref("Event")}}},
            "responses": {
                **_ok("Accepted: the plan or the effect", "EventAnswer", "202"),
                **_ok("A replay: the first answer again", "EventAnswer"),
                **_problems(401, 405, 408, 409, 413, 415, 422, 429),
            },
        }
    }


def _path_id(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _page_query() -> list[dict[str, Any]]:
    """The read API's list filters and paging (contract §6)."""
    limit = {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}
    instant = {"type": "string", "format": "date-time"}
    return [
        {"name": "status", "in": "query", "schema": {"enum": [s.value for s in Status]}},
        {"name": "since", "in": "query", "schema": instant},
        {"name": "until", "in": "query", "schema": instant},
        {"name": "limit", "in": "query", "schema": limit},
        {"name": "cursor", "in": "query", "schema": {"type": "string"}},
    ]


def _read(summary: str, parameters: list[Any], answer: str, schema: str) -> dict[str, Any]:
    """One operation of the read API: bearer auth, its answer, its problems."""
    return {
        "summary": summary,
        "security": _BEARER,
        "parameters": parameters,
        "responses": {**_ok(answer, schema), **_problems(401, 403, 404, 405, 422)},
    }


def _api_paths() -> dict[str, Any]:
    base = "/v1/clinics/{clinic_id}"
    paths = {
        base + path: {method: _read(summary, [_CLINIC, *params], answer, schema)}
        for path, method, summary, params, answer, schema in _reads()
    }
    # An erasure without [privacy] number_keys configured is refused.
    paths[f"{base}/patients/{{patient_id}}/erase"]["post"]["responses"].update(_problems(409))
    return {**paths, **_notification_paths(base)}


def _reads() -> list[tuple[str, str, str, list[Any], str, str]]:
    """The read API's operations: path, method, summary, parameters, answer, its schema."""
    treatment, patient, query = _path_id("treatment_id"), _path_id("patient_id"), _page_query()
    appointment, treated = _path_id("appointment_id"), "The treatment as it now stands"
    return [
        ("/treatments/{treatment_id}", "get", "A treatment and its messages, each with its "
         "history", [treatment], "The treatment", "TreatmentAnswer"),
        ("/treatments/{treatment_id}/cancel", "post", "Cancel the treatment's pending messages",
         [treatment], treated, "TreatmentAnswer"),
        ("/appointments/{appointment_id}", "get", "An appointment and the messages it planned, "
         "each with its history", [appointment], "The appointment", "AppointmentAnswer"),
        ("/patients/{patient_id}/messages", "get", "A patient's messages, newest first",
         [patient, *query], "A page", "MessagePage"),
        ("/messages", "get", "The clinic's messages, newest first", query, "A page", "MessagePage"),
        ("/patients/{patient_id}/erase", "post", "Erase the patient: cancel what is scheduled, "
         "overwrite their name, number, texts and replies (contract §19); a repeat answers the "
         "same", [patient], "What was erased", "ErasureAnswer"),
    ]  # fmt: skip


def _notification_paths(base: str) -> dict[str, Any]:
    """Contract §11: the clinic's notifications with their attempts, and a retry (409 once
    delivered)."""
    states = {"enum": [s.value for s in NotificationState]}
    limit = {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}
    query = [
        {"name": n, "in": "query", "schema": v}
        for n, v in (("state", states), ("limit", limit), ("cursor", {"type": "string"}))
    ]
    retry = _read(
        "A failed notification pending again, due now (409 when delivered)",
        [_CLINIC, _path_id("notification_id")],
        "The notification as it now stands",
        "NotificationView",
    )
    retry["responses"].update(_problems(409))
    listed = _read(
        "The clinic's notifications, newest first", [_CLINIC, *query], "A page", "NotificationPage"
    )
    return {
        f"{base}/notifications": {"get": listed},
        f"{base}/notifications/{{notification_id}}/retry": {"post": retry},
    }


def _twilio_paths() -> dict[str, Any]:
    form = "application/x-www-form-urlencoded"

    def hook(summary: str, fields: list[str], answer: dict[str, Any]) -> dict[str, Any]:
        body = {"type": "object", "properties": {f: {"type": "string"} for f in fields}}
        return {
            "post": {
                "summary": summary,
                "security": [{"twilioSignature": []}],
                "requestBody": {"required": True, "content": {form: {"schema": body}}},
                "responses": {"200": answer, **_problems(403, 405, 415)},
            }
        }

    twiml = {"description": "TwiML", "content": {"application/xml": {"schema": {"type": "string"}}}}
    return {
        "/v1/twilio/status": hook(
            "Twilio delivery status callback",
            ["MessageSid", "MessageStatus", "ErrorCode"],
            {"description": "Applied, or ignored when unknown"},
        ),
        "/v1/twilio/inbound": hook(
            "A patient's reply (STOP / START / HELP, STOP <WORD>, ACK, a check-in's answer)",
            ["From", "To", "Body", "MessageSid", "NumMedia", "MediaUrl0", "MediaContentType0"],
            twiml,
        ),
    }


def _ops_paths() -> dict[str, Any]:
    return {
        "/healthz": {"get": {"summary": "Liveness", "responses": _ok("Running", "Health")}},
        "/readyz": {
            "get": {
                "summary": "Readiness",
                "responses": {
                    **_ok("Ready", "Readiness"),
                    **_ok("Not ready: the failing check says why", "Readiness", "503"),
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {
                    "200": {
                        "description": "Prometheus text",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.1",
                        "content": {JSON: {"schema": {"type": "object"}}},
                    }
                },
            }
        },
    }


# Every operation's id (what a generated client names its function) and its tag (the group a
# client and the docs file it under), by path and method. A test checks the table and the
# paths match both ways, so a new endpoint cannot go out without a name.
V1 = "/v1/clinics/{clinic_id}"
OPERATIONS: dict[tuple[str, str], tuple[str, str]] = {
    ("post", f"{V1}/events"): ("postEvent", "events"),
    ("get", f"{V1}/treatments/{{treatment_id}}"): ("getTreatment", "treatments"),
    ("post", f"{V1}/treatments/{{treatment_id}}/cancel"): ("cancelTreatment", "treatments"),
    ("get", f"{V1}/appointments/{{appointment_id}}"): ("getAppointment", "appointments"),
    ("get", f"{V1}/patients/{{patient_id}}/messages"): ("listPatientMessages", "messages"),
    ("get", f"{V1}/messages"): ("listMessages", "messages"),
    ("post", f"{V1}/patients/{{patient_id}}/erase"): ("erasePatient", "patients"),
    ("get", f"{V1}/notifications"): ("listNotifications", "notifications"),
    ("post", f"{V1}/notifications/{{notification_id}}/retry"): (
        "retryNotification",
        "notifications",
    ),
    ("get", f"{V1}/escalations"): ("listEscalations", "escalations"),
    ("post", f"{V1}/escalations/{{escalation_id}}/acknowledge"): (
        "acknowledgeEscalation",
        "escalations",
    ),
    ("get", f"{V1}/audit"): ("listAudit", "audit"),
    ("get", f"{V1}/media/{{media_id}}"): ("getMedia", "media"),
    ("post", "/v1/twilio/status"): ("twilioStatus", "twilio"),
    ("post", "/v1/twilio/inbound"): ("twilioInbound", "twilio"),
    ("get", "/healthz"): ("getHealth", "operations"),
    ("get", "/readyz"): ("getReadiness", "operations"),
    ("get", "/metrics"): ("getMetrics", "operations"),
    ("get", "/openapi.json"): ("getOpenapi", "operations"),
}
TAGS = [
    {"name": "events", "description": "Signed events from the clinic's practice system"},
    {"name": "treatments", "description": "A treatment's plan: read it, cancel it"},
    {"name": "appointments", "description": "An appointment and the messages it planned"},
    {"name": "messages", "description": "Messages, newest first, with their history"},
    {"name": "patients", "description": "Erasing a patient"},
    {"name": "notifications", "description": "Notifications to the clinic's system"},
    {"name": "escalations", "description": "Urgent replies that need a person"},
    {"name": "audit", "description": "Who did what, when"},
    {"name": "media", "description": "Patients' photos"},
    {"name": "twilio", "description": "Twilio's webhooks (signed by Twilio)"},
    {"name": "operations", "description": "Health, readiness, metrics, this document"},
]


def _named(paths: dict[str, Any]) -> dict[str, Any]:
    """`paths` with each operation's id and tag from `OPERATIONS`."""
    for path, operations in paths.items():
        for method, operation in operations.items():
            operation_id, tag = OPERATIONS[(method, path)]
            operation["operationId"] = operation_id
            operation["tags"] = [tag]
    return paths


def document() -> dict[str, Any]:
    """The whole OpenAPI document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Aftercare",
            "version": "1.0.0",
            "description": "Aftercare and serum-application SMS for skin clinics.",
        },
        "tags": TAGS,
        "paths": _named(
            {
                "/v1/clinics/{clinic_id}/events": _events_path(),
                **_api_paths(),
                **escalation_paths(_read, _CLINIC),
                **audit_paths(_read, _CLINIC),
                **media_paths(_read, _CLINIC),
                **_twilio_paths(),
                **_ops_paths(),
            }
        ),
        "components": {
            "schemas": _schemas(),
            "securitySchemes": _SECURITY,
        },
    }
