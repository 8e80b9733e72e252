"""The escalations API's and the audit API's part of the OpenAPI document (SPEC §10, §16),
built with the document's own operation builder so they read alike."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from service.reads.escalations import ACKNOWLEDGE
from service.reads.paging import ESCALATION_STATES, MAX_LIMIT

Operation = Callable[[str, list[Any], str, str], dict[str, Any]]


def escalation_paths(read: Operation, clinic: dict[str, Any]) -> dict[str, Any]:
    """The list and the acknowledgement, under /v1/clinics/{clinic_id}/escalations."""
    base = "/v1/clinics/{clinic_id}/escalations"
    escalation = {"name": "escalation_id", "in": "path", "required": True}
    query = [
        {"name": "state", "in": "query", "schema": {"enum": list(ESCALATION_STATES)}},
        {
            "name": "limit",
            "in": "query",
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
        },
        {"name": "cursor", "in": "query", "schema": {"type": "string"}},
    ]
    acknowledge = read(
        "Acknowledge an escalation",
        [clinic, {**escalation, "schema": {"type": "string"}}],
        "The escalation as it now stands",
        "Escalation",
    )
    acknowledge["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": ACKNOWLEDGE.json_schema()}},
    }
    acknowledge["responses"]["415"] = {"description": "Not application/json"}
    return {
        base: {
            "get": read(
                "The clinic's escalations, newest first",
                [clinic, *query],
                "A page",
                "EscalationPage",
            )
        },
        f"{base}/{{escalation_id}}/acknowledge": {"post": acknowledge},
    }


def audit_paths(read: Operation, clinic: dict[str, Any]) -> dict[str, Any]:
    """The audit trail (SPEC §16), under /v1/clinics/{clinic_id}/audit."""
    query = [
        {
            "name": "limit",
            "in": "query",
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
        },
        {"name": "cursor", "in": "query", "schema": {"type": "string"}},
    ]
    listed = read("The clinic's audit trail, newest first", [clinic, *query], "A page", "AuditPage")
    return {"/v1/clinics/{clinic_id}/audit": {"get": listed}}
