"""The answer to an erasure (contract §19): which patient, when, and how many rows of each kind
it cancelled or overwrote; the same answer to every erase of a patient nothing new was
reported of since."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import TypeAdapter
from typing_extensions import TypedDict


class ErasedCounts(TypedDict):
    """How many rows the erasure cancelled or overwrote, by kind."""

    cancelled: int  # scheduled messages cancelled (`patient erased`)
    messages: int  # messages whose body (and the patient's number) was blanked
    history: int  # history entries that quoted a reply or a number
    escalations: int  # escalations whose reply was blanked
    replies: int  # texts from the number to the clinic, blanked
    media: int  # photos deleted, bytes and all (contract §17)
    events: int  # stored answers to the clinic's events about the patient, scrubbed
    notifications: int  # notifications that carried a reply or a masked number, scrubbed
    opt_outs: int  # opt-outs of the number now kept as its keyed hash


class ErasureAnswer(TypedDict):
    """An erasure: the clinic's patient id, when it was erased, what it erased."""

    patient_id: str
    erased_at: datetime
    erased: ErasedCounts


ERASURE: TypeAdapter[ErasureAnswer] = TypeAdapter(ErasureAnswer)


def view(patient_id: str, erased_at: datetime, counts: dict[str, int]) -> ErasureAnswer:
    """The answer, from what the erasure stored."""
    erased: ErasedCounts = {
        "cancelled": counts.get("cancelled", 0),
        "messages": counts.get("messages", 0),
        "history": counts.get("history", 0),
        "escalations": counts.get("escalations", 0),
        "replies": counts.get("replies", 0),
        "media": counts.get("media", 0),
        "events": counts.get("events", 0),
        "notifications": counts.get("notifications", 0),
        "opt_outs": counts.get("opt_outs", 0),
    }
    return {"patient_id": patient_id, "erased_at": erased_at, "erased": erased}


def json_schema_inputs() -> list[tuple[str, Literal["serialization"], TypeAdapter[Any]]]:
    """The erasure's answer by its name in the OpenAPI document."""
    return [("ErasureAnswer", "serialization", ERASURE)]
