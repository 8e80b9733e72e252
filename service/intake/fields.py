"""Field types shared by the events' payloads (`payloads`, `series_payloads`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, Field

from service.planning.timing import anchor

Instant = Annotated[
    AwareDatetime,
    AfterValidator(anchor),
    Field(description="ISO 8601 with Z or an offset; from 1970 to 8999 in UTC"),
]
"""An aware instant, in UTC, from 1970 to 8999 (`planning.timing.anchor`): before UTC's first
instant, or planned in a zone west of UTC in year 1, was a 500."""
Ident = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]
