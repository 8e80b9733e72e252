"""The range of instants plans may be anchored at (service.planning.timing.anchor), as a property:
every protocol of config.example.toml plans, for a treatment and for an appointment, at any instant
of the range in any zone, down to its first and up to its last microsecond, without leaving what
`datetime` can hold. Year 1 in Los Angeles did not (a 500 on the events, a traceback in preview).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.config import Settings, load_settings
from service.planning.timing import EARLIEST_ANCHOR, LATEST_ANCHOR, anchor
from service.previews import preview
from tests.fixtures.config import EXAMPLE

# The zones furthest from UTC either way, one with DST, one off the hour.
ZONES = ["Pacific/Kiritimati", "Etc/GMT+12", "America/Los_Angeles", "Australia/Lord_Howe"]
EDGE = timedelta(days=60)


@pytest.fixture(scope="module")
def example() -> Settings:
    return load_settings(EXAMPLE, environ={}).settings


def _naive(instant: datetime) -> datetime:
    return instant.replace(tzinfo=None)


_STAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d")  # local time first, then UTC
LAST = LATEST_ANCHOR - timedelta(microseconds=1)
edges = st.one_of(
    st.datetimes(_naive(EARLIEST_ANCHOR), _naive(EARLIEST_ANCHOR + EDGE)),
    st.datetimes(_naive(LATEST_ANCHOR - EDGE), _naive(LAST)),
    st.sampled_from([_naive(EARLIEST_ANCHOR), _naive(LAST)]),
).map(lambda naive: naive.replace(tzinfo=UTC))


def _sent_at(table: str) -> list[datetime]:
    """The UTC column of `preview`'s table, a row a message."""
    rows = [row for row in table.splitlines()[1:] if _STAMP.search(row)]  # not the total
    return [datetime.fromisoformat(_STAMP.findall(row)[1]).replace(tzinfo=UTC) for row in rows]


@settings(max_examples=150, deadline=None)
@given(instant=edges, tz=st.sampled_from(ZONES), data=st.data())
def test_every_protocol_plans_at_the_ends_of_the_range(
    example: Settings, instant: datetime, tz: str, data: st.DataObject
) -> None:
    """Steps after the treatment and prep days before an appointment, quiet hours moving them
    either way: each is planned after its treatment, before its appointment."""
    assert anchor(instant) == instant
    protocol = data.draw(st.sampled_from(sorted(example.protocols)))
    common: dict[str, Any] = {
        "protocol": protocol,
        "clinic_id": None,
        "timezone": tz,
        "session": 2,
        "of": 3,
    }
    after = _sent_at(preview(example, completed_at=instant, **common))
    assert after and all(at >= instant.replace(second=0, microsecond=0) for at in after)
    month_before = instant - timedelta(days=30)
    before = _sent_at(
        preview(example, completed_at=None, appointment_at=instant, now=month_before, **common)
    )
    assert before and all(month_before - timedelta(minutes=1) <= at <= instant for at in before)
