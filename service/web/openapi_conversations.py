"""The escalations API's and the audit API's part of the OpenAPI document (contract §10, §16),
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
        "EscalationView",
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
    """The audit trail (contract §16), under /v1/clinics/{clinic_id}/audit."""
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


IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp")  # as stored (HEIC is kept as JPEG)


def media_paths(read: Operation, clinic: dict[str, Any]) -> dict[str, Any]:
    """One photo's bytes (contract §17): 409 while it is being downloaded, 404 when not kept."""
    media_id = {"name": "media_id", "in": "path", "required": True, "schema": {"type": "string"}}
    operation = read("A patient's photo, without EXIF", [clinic, media_id], "", "Problem")
    binary = {"schema": {"type": "string", "format": "binary"}}
    operation["responses"]["200"] = {
        "description": "The photo's bytes, its stored type, Cache-Control: no-store",
        "content": {t: binary for t in IMAGE_TYPES},
    }
    operation["responses"]["409"] = {
        **operation["responses"]["404"],
        "description": "Still being downloaded from Twilio: retry later",
    }
    return {"/v1/clinics/{clinic_id}/media/{media_id}": {"get": operation}}
