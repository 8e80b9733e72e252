"""The tables as SQLAlchemy Core sees them, for the hot paths that write in batches.

The ORM builds an object, an identity-map entry and an evaluator for every row it touches;
claims and send outcomes go through Core statements instead, a batch per round trip.
"""

from __future__ import annotations

from typing import cast

import sqlalchemy as sa

from service.storage.models import (
    Event,
    Message,
    MessageHistory,
    OptOut,
    Patient,
    ProviderStatus,
    Treatment,
)

EVENT = cast(sa.Table, Event.__table__)  # type: ignore[attr-defined]
MESSAGE = cast(sa.Table, Message.__table__)  # type: ignore[attr-defined]
HISTORY = cast(sa.Table, MessageHistory.__table__)  # type: ignore[attr-defined]
OPT_OUT = cast(sa.Table, OptOut.__table__)  # type: ignore[attr-defined]
PATIENT = cast(sa.Table, Patient.__table__)  # type: ignore[attr-defined]
TREATMENT = cast(sa.Table, Treatment.__table__)  # type: ignore[attr-defined]
PROVIDER_STATUS = cast(sa.Table, ProviderStatus.__table__)  # type: ignore[attr-defined]
