"""The OpenAPI 3.1 description of every endpoint (SPEC §5-9), served at /openapi.json."""

from __future__ import annotations

from typing import Any

from service.models import Status

JSON = "application/json"
PROBLEM = "application/problem+json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(kind: str, **extra: Any) -> dict[str, Any]:
    return {"type": [kind, "null"], **extra}


def _problems(*statuses: int) -> dict[str, Any]:
    return {str(s): {"description": _REASONS[s], "content": {PROBLEM: {"schema": _ref("Problem")}}}
            for s in statuses}


def _ok(description: str, schema: str, status: str = "200") -> dict[str, Any]:
    return {status: {"description": description, "content": {JSON: {"schema": _ref(schema)}}}}


_REASONS = {
    401: "Missing or invalid signature or token, or unknown clinic",
    403: "A token of another clinic, or a forged Twilio signature",
    404: "No such resource at this clinic",
    405: "Method not allowed",
    409: "The webhook-id was used with another body",
    413: "Body over server.max_body_bytes",
    415: "Not application/json",
    422: "A field is missing or wrong",
}
_CLINIC = {"name": "clinic_id", "in": "path", "required": True, "schema": {"type": "string"}}
_BEARER: list[dict[str, list[str]]] = [{"bearer": []}]


def _message_schemas() -> dict[str, Any]:
    statuses = [s.value for s in Status]
    planned = {
        "type": "object",
        "required": ["id", "step", "kind", "send_at", "status", "reason"],
        "properties": {
            "id": {"type": "string"}, "step": {"type": "string"},
            "kind": {"enum": ["aftercare", "serum", "checkin", "rebook"]},
            "send_at": {"type": "string", "format": "date-time"},
            "status": {"enum": statuses}, "reason": _nullable("string"),
        },
    }
    history = {
        "type": "object", "required": ["at", "status"],
        "properties": {"at": {"type": "string", "format": "date-time"},
                       "status": {"enum": statuses}, "detail": _nullable("string"),
                       "error_code": _nullable("integer")},
    }
    message = {"allOf": [_ref("PlannedMessage"), {
        "type": "object", "required": ["to", "history"],
        "properties": {"to": {"type": "string"}, "seq": {"type": "integer"},
                       "history": {"type": "array", "items": _ref("HistoryEntry")},
                       "sent_at": _nullable("string", format="date-time"),
                       "provider_id": _nullable("string"),
                       "error_code": _nullable("integer")}}]}
    return {"PlannedMessage": planned, "HistoryEntry": history, "Message": message}


def _resource_schemas() -> dict[str, Any]:
    treatment = {
        "type": "object", "required": ["id", "protocol", "completed_at", "patient_id"],
        "properties": {"id": {"type": "string"}, "protocol": {"type": "string"},
                       "completed_at": {"type": "string", "format": "date-time"},
                       "session_number": {"type": "integer"},
                       "sessions_planned": {"type": "integer"}, "serum": {"type": "string"},
                       "patient_id": {"type": "string"},
                       "cancelled_at": _nullable("string", format="date-time")},
    }
    problem = {
        "type": "object", "required": ["type", "title", "status", "detail"],
        "properties": {"type": {"type": "string"}, "title": {"type": "string"},
                       "status": {"type": "integer"}, "detail": {"type": "string"},
                       "errors": {"type": "array", "items": {
                           "type": "object", "required": ["field", "message"],
                           "properties": {"field": {"type": "string"},
                                          "message": {"type": "string"}}}}},
    }
    return {
        "Treatment": treatment, "Problem": problem,
        "EventAnswer": {"type": "object", "required": ["event_id", "type", "messages"],
                        "properties": {"event_id": {"type": "string"},
                                       "type": {"type": "string"},
                                       "treatment": _ref("Treatment"),
                                       "patient": {"type": "object"},
                                       "messages": {"type": "array",
                                                    "items": _ref("PlannedMessage")}}},
        "TreatmentDetail": {"type": "object", "required": ["treatment", "messages"],
                            "properties": {"treatment": _ref("Treatment"),
                                           "messages": {"type": "array",
                                                        "items": _ref("Message")}}},
        "MessagePage": {"type": "object", "required": ["messages", "next_cursor"],
                        "properties": {"messages": {"type": "array", "items": _ref("Message")},
                                       "next_cursor": _nullable("string")}},
    }


def _event_schema() -> dict[str, Any]:
    patient = {"type": "object", "required": ["id"], "properties": {
        "id": {"type": "string"}, "first_name": {"type": "string"},
        "phone": {"type": "string", "description": "E.164, mobile"},
        "timezone": {"type": "string"}, "locale": {"type": "string"},
        "sms_consent": {"type": "boolean"}}}
    treatment = {"type": "object", "required": ["id"], "properties": {
        "id": {"type": "string"}, "protocol": {"type": "string"},
        "completed_at": {"type": "string", "format": "date-time"},
        "session_number": {"type": "integer", "minimum": 1},
        "sessions_planned": {"type": "integer", "minimum": 1}, "serum": {"type": "string"}}}
    return {"type": "object", "required": ["type", "timestamp", "data"], "properties": {
        "type": {"enum": ["treatment.completed", "treatment.cancelled", "patient.updated"]},
        "timestamp": {"type": "string", "format": "date-time"},
        "data": {"type": "object", "properties": {"treatment": treatment,
                                                  "patient": patient}}}}


def _events_path() -> dict[str, Any]:
    headers = [{"name": n, "in": "header", "required": True, "schema": {"type": "string"}}
               for n in ("webhook-id", "webhook-timestamp", "webhook-signature")]
    return {"post": {
        "summary": "A signed clinic event (Standard Webhooks)",
        "parameters": [_CLINIC, *headers],
        "requestBody": {"required": True, "content": {JSON: {"schema": _event_schema()}}},
        "responses": {**_ok("Accepted: the plan or the effect", "EventAnswer", "202"),
                      **_ok("A replay: the first answer again", "EventAnswer"),
                      **_problems(401, 405, 409, 413, 415, 422)}}}


def _api_paths() -> dict[str, Any]:
    treatment = {"name": "treatment_id", "in": "path", "required": True,
                 "schema": {"type": "string"}}
    patient = {"name": "patient_id", "in": "path", "required": True,
               "schema": {"type": "string"}}
    query = [
        {"name": "status", "in": "query", "schema": {"enum": [s.value for s in Status]}},
        {"name": "since", "in": "query", "schema": {"type": "string", "format": "date-time"}},
        {"name": "until", "in": "query", "schema": {"type": "string", "format": "date-time"}},
        {"name": "limit", "in": "query",
         "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
        {"name": "cursor", "in": "query", "schema": {"type": "string"}},
    ]
    errors = _problems(401, 403, 404, 405, 422)
    return {
        "/v1/clinics/{clinic_id}/treatments/{treatment_id}": {"get": {
            "summary": "A treatment and its messages, each with its history",
            "security": _BEARER, "parameters": [_CLINIC, treatment],
            "responses": {**_ok("The treatment", "TreatmentDetail"), **errors}}},
        "/v1/clinics/{clinic_id}/treatments/{treatment_id}/cancel": {"post": {
            "summary": "Cancel the treatment's pending messages",
            "security": _BEARER, "parameters": [_CLINIC, treatment],
            "responses": {**_ok("The treatment as it now stands", "TreatmentDetail"),
                          **errors}}},
        "/v1/clinics/{clinic_id}/patients/{patient_id}/messages": {"get": {
            "summary": "A patient's messages, newest first", "security": _BEARER,
            "parameters": [_CLINIC, patient, *query],
            "responses": {**_ok("A page", "MessagePage"), **errors}}},
        "/v1/clinics/{clinic_id}/messages": {"get": {
            "summary": "The clinic's messages, newest first", "security": _BEARER,
            "parameters": [_CLINIC, *query],
            "responses": {**_ok("A page", "MessagePage"), **errors}}},
    }


def _twilio_paths() -> dict[str, Any]:
    form = "application/x-www-form-urlencoded"
    signature = {"name": "X-Twilio-Signature", "in": "header", "required": True,
                 "schema": {"type": "string"}}

    def hook(summary: str, fields: list[str], answer: dict[str, Any]) -> dict[str, Any]:
        body = {"type": "object", "properties": {f: {"type": "string"} for f in fields}}
        return {"post": {"summary": summary, "parameters": [signature],
                         "requestBody": {"content": {form: {"schema": body}}},
                         "responses": {"200": answer, **_problems(403, 405, 415)}}}

    twiml = {"description": "TwiML", "content": {"application/xml": {"schema": {
        "type": "string"}}}}
    return {
        "/v1/twilio/status": hook("Twilio delivery status callback",
                                  ["MessageSid", "MessageStatus", "ErrorCode"],
                                  {"description": "Applied, or ignored when unknown"}),
        "/v1/twilio/inbound": hook("A patient's reply (STOP / START / HELP / text)",
                                   ["From", "To", "Body", "MessageSid"], twiml),
    }


def _ops_paths() -> dict[str, Any]:
    ready = {"type": "object", "required": ["status", "checks"], "properties": {
        "status": {"type": "string"},
        "checks": {"type": "object", "additionalProperties": {"type": "string"}}}}
    return {
        "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {
            "description": "Running", "content": {JSON: {"schema": {"type": "object"}}}}}}},
        "/readyz": {"get": {"summary": "Readiness", "responses": {
            "200": {"description": "Ready", "content": {JSON: {"schema": ready}}},
            "503": {"description": "Not ready", "content": {JSON: {"schema": ready}}}}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {
            "description": "Prometheus text", "content": {"text/plain": {
                "schema": {"type": "string"}}}}}}},
        "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {
            "description": "OpenAPI 3.1", "content": {JSON: {"schema": {"type": "object"}}}}}}},
    }


def document() -> dict[str, Any]:
    """The whole OpenAPI document."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "Aftercare", "version": "1.0.0",
                 "description": "Aftercare and serum-application SMS for skin clinics."},
        "paths": {"/v1/clinics/{clinic_id}/events": _events_path(), **_api_paths(),
                  **_twilio_paths(), **_ops_paths()},
        "components": {
            "schemas": {**_message_schemas(), **_resource_schemas()},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
