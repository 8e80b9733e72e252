"""A treatment.completed event whose steps meet quiet hours, each by its rule (contract §5, §15):
the answer and the stored messages, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

from sqlmodel.sql.sqltypes import AutoString

from service.config import StepSettings
from service.planning.steps import StepKind
from service.storage.tables import MESSAGE
from service.web.openapi import document
from tests.helpers.client import bearer, post_event
from tests.helpers.events import completed_event, patient_updated_event
from tests.support import TOKEN, FakeClock, make_settings

# 19:30 PST on Tuesday 24 November 2026; clinic "glow" is quiet 21:00-08:00 (the default).
COMPLETED = datetime(2026, 11, 25, 3, 30, tzinfo=UTC)
LATE: dict[str, Any] = {
    "title": "Late",
    "steps": [
        {
            "key": "tonight",
            "kind": "aftercare",
            "after": "2h",
            "in_quiet_hours": "earlier",
            "text": "Hi {first_name}, tonight: lukewarm water only.",
        },
        {
            "key": "cool",
            "kind": "aftercare",
            "after": "2h30m",
            "in_quiet_hours": "skip",
            "text": "A cool compress helps with redness.",
        },
        {
            "key": "morning",
            "kind": "aftercare",
            "after": "3h",
            "text": "Good morning, {first_name}: SPF today.",
        },
        {
            "key": "prep",
            "kind": "prep",
            "before": "1d",
            "text": "See you tomorrow, {first_name}.",
        },
    ],
}


async def plan_late(make_client: Any, database: str) -> tuple[Any, dict[str, Any]]:
    settings = make_settings(database, protocols={"late": LATE})
    client = await make_client(settings, clock=FakeClock(COMPLETED + timedelta(minutes=1)))
    body = completed_event(
        treatment={"protocol": "late", "completed_at": COMPLETED.isoformat()},
    )
    response = await post_event(client, body)
    assert response.status == 202
    return client, await response.json()


class TestQuietRulesThroughTheEvent:
    async def test_each_step_lands_by_its_rule(self, make_client: Any, database: str) -> None:
        """earlier: 20:45 PST; skip: cancelled at its time, reason "quiet hours"; defer (the
        default): 08:00 PST; a prep step is not planned by a treatment at all."""
        _client, plan = await plan_late(make_client, database)
        got = {m["step"]: (m["send_at"], m["status"], m["reason"]) for m in plan["messages"]}
        assert got == {
            "tonight": ("2026-11-25T04:45:00Z", "scheduled", None),
            "cool": ("2026-11-25T06:00:00Z", "cancelled", "quiet hours"),
            "morning": ("2026-11-25T16:00:00Z", "scheduled", None),
        }

    async def test_the_skipped_message_is_kept_with_its_history(
        self, make_client: Any, database: str
    ) -> None:
        """The read API shows the skipped message cancelled from the start, never sent."""
        client, plan = await plan_late(make_client, database)
        treatment_id = plan["treatment"]["id"]
        response = await client.get(
            f"/v1/clinics/glow/treatments/{treatment_id}", headers=bearer(TOKEN)
        )
        assert response.status == 200
        messages = {m["step"]: m for m in (await response.json())["messages"]}
        history = [(h["status"], h["detail"]) for h in messages["cool"]["history"]]
        assert history == [("cancelled", "quiet hours")]
        assert [h["status"] for h in messages["tonight"]["history"]] == ["scheduled"]


class TestPrepKind:
    def test_the_api_and_the_config_know_the_same_kinds_with_prep(self) -> None:
        """The answers' `kind` (and so /openapi.json) and the config accept prep alike."""
        kinds = set(get_args(StepKind))
        assert "prep" in kinds
        schema = json.dumps(document())
        assert all(f'"{kind}"' in schema for kind in kinds)
        assert set(get_args(StepSettings.model_fields["kind"].annotation)) == kinds

    def test_the_message_kind_column_holds_prep(self) -> None:
        """No constraint on message.kind but its length, which "prep" fits: no migration."""
        column = MESSAGE.c.kind
        assert isinstance(column.type, AutoString)  # sqlmodel's String
        assert column.type.length is not None
        assert max(len(kind) for kind in get_args(StepKind)) <= column.type.length
        assert not [c for c in MESSAGE.constraints if "kind" in str(getattr(c, "sqltext", ""))]


class TestNewZone:
    async def test_a_skip_step_whose_new_zone_time_is_quiet_is_cancelled(
        self, make_client: Any, database: str
    ) -> None:
        """09:00 in Los Angeles is 02:00 in Tokyo: a "skip" step is cancelled, reason quiet
        hours, when the patient moves there (a "defer" one moves to 08:00 JST)."""
        steps = [
            {**LATE["steps"][1], "after": "2h"},  # "cool", skip
            {**LATE["steps"][2], "after": "2h"},  # "morning", defer
        ]
        settings = make_settings(database, protocols={"late": {"title": "Late", "steps": steps}})
        completed = datetime(2026, 11, 25, 15, tzinfo=UTC)  # 07:00 PST
        client = await make_client(settings, clock=FakeClock(completed))
        body = completed_event(
            treatment={"protocol": "late", "completed_at": completed.isoformat()}
        )
        plan = await (await post_event(client, body)).json()
        assert {m["status"] for m in plan["messages"]} == {"scheduled"}
        response = await post_event(client, patient_updated_event(timezone="Asia/Tokyo"))
        assert response.status == 202
        got = {
            m["step"]: (m["send_at"], m["status"], m["reason"])
            for m in (await response.json())["messages"]
        }
        assert got == {
            "cool": ("2026-11-25T17:00:00Z", "cancelled", "quiet hours"),
            "morning": ("2026-11-25T23:00:00Z", "scheduled", None),
        }
