"""Erasing a patient (contract §19), from outside, on SQLite and PostgreSQL: through the API and
through `aftercare erase` beside the running app, a patient with a sent check-in, scheduled
messages, a reply in distinctive words, an escalation, an alert and notifications leaves neither
name, number (not even its last four) nor words anywhere in the database — SQLite's file and
write-ahead log read as raw bytes, every text column of every PostgreSQL table scanned — while
an earlier STOP (or STOP <WORD>) still holds for a new patient with that number. The world is
tests/fixtures/erasure.py's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.fixtures.conversations import NURSE, alerted
from tests.fixtures.erasure import NAME, NUMBER, WORDS, World, world
from tests.helpers.client import bearer
from tests.helpers.events import completed_event, encode, patient_updated_event, signed
from tests.support import OTHER_TOKEN, SECRET, TOKEN

__all__ = ["world"]  # the fixture, from tests/fixtures/erasure.py


async def _replied_and_escalated(w: World) -> dict[str, Any]:
    """Zephyrine's check-in sent, her urgent reply escalated and texted to the nurse."""
    plan = await w.c.checked_in(first_name=NAME, phone=NUMBER)
    assert NAME in await w.text(WORDS)  # the stored answer names her too
    await alerted(w.c, 1)
    assert NAME in w.c.to(NURSE)[0]
    return plan


async def _new_patient_plan(w: World) -> dict[str, Any]:
    """A new patient's treatment to the erased patient's number."""
    body = completed_event(
        treatment={"protocol": "care"},
        patient={"id": "pt_new", "first_name": "Ona", "phone": NUMBER, "timezone": "UTC"},
    )
    return await _post(w, body)


async def _post(w: World, body: dict[str, Any]) -> dict[str, Any]:
    """A signed event of the clinic's, accepted (202); its answer."""
    raw = encode(body)
    response = await w.c.client.post(
        "/v1/clinics/glow/events", data=raw, headers=signed(raw, secret=SECRET)
    )
    assert response.status == 202, await response.text()
    answer: dict[str, Any] = await response.json()
    return answer


class TestErasureThroughTheApi:
    async def test_nothing_of_the_patient_is_left_and_stop_serum_still_holds(
        self, world: World
    ) -> None:
        """The answer counts what was erased; the spf note still scheduled is cancelled;
        nothing of her is stored; a new patient with her number gets no serum texts."""
        w = world
        await _replied_and_escalated(w)
        assert "no more serum texts" in await w.text("STOP SERUM")
        assert await w.found()  # she is there before
        status, body = await w.erase()
        assert status == 200, body
        erased = body["erased"]
        assert body["patient_id"] == "pt_77" and erased["cancelled"] == 1  # spf (serum: STOP)
        assert erased["escalations"] == 1 and erased["replies"] == 2 and erased["opt_outs"] == 1
        assert erased["notifications"] >= 3  # replied, escalated, opted out
        assert await w.found() == []
        plan = await _new_patient_plan(w)
        kinds = {m["kind"]: (m["status"], m["reason"]) for m in plan["messages"]}
        assert kinds["serum"] == ("suppressed", "opted out of serum")
        assert kinds["checkin"][0] == "scheduled"

    async def test_a_second_erase_answers_the_same_and_is_audited_once(self, world: World) -> None:
        """200 with the same body; one audit row (actor api, counts only); patient.erased
        queued with the patient's id only."""
        await _replied_and_escalated(world)
        first, again = await world.erase(), await world.erase()
        assert first == again and first[0] == 200
        audit = await world.rows("SELECT actor, action, patient_id, detail FROM audit")
        [(actor, action, patient, detail)] = audit
        assert (actor, action, patient) == ("api", "patient_erased", "pt_77")
        assert json.loads(detail) == first[1]["erased"]
        erased = [n for n in await world.c.notifications() if n["type"] == "patient.erased"]
        assert [n["data"] for n in erased] == [{"patient_id": "pt_77"}]

    async def test_the_history_keeps_what_happened_without_the_words(self, world: World) -> None:
        """The check-in's history says it was replied to (and how urgent), the read API
        shows no number, not even its last four."""
        plan = await _replied_and_escalated(world)
        await world.erase()
        [checkin, *_] = await world.c.messages(plan)
        details = [h["detail"] for h in checkin["history"]]
        assert "replied (urgent)" in details and checkin["to"] == "•" * 7
        statuses = {m["kind"]: m["status"] for m in await world.c.messages(plan)}
        assert statuses["serum"] == statuses["aftercare"] == "cancelled"

    async def test_refusals(self, world: World) -> None:
        """An unknown patient is a 404 problem; another clinic's token a 403."""
        status, body = await world.erase("pt_nobody")
        assert status == 404 and body["title"] == "Not found"
        status, _ = await world.erase(token=OTHER_TOKEN)
        assert status == 403


class TestAnErasedNumberInUseAgain:
    async def test_its_stop_serum_names_the_number_again_for_the_last_check(
        self, world: World
    ) -> None:
        """Kept as a hash after the erasure, the STOP SERUM names the number again once
        another patient moves onto it (patient.updated) or a new one arrives with it: the last
        check before a send compares numbers, so it must find the number itself."""
        w = world
        await _replied_and_escalated(w)
        await w.text("STOP SERUM")
        await w.erase()
        assert await w.rows("SELECT phone FROM kind_opt_out") != [(NUMBER,)]
        moving = {"id": "pt_b", "first_name": "Bo", "phone": "+14155550188", "timezone": "UTC"}
        await _post(
            w, completed_event(treatment={"id": "tr_b", "protocol": "care"}, patient=moving)
        )
        await _post(w, patient_updated_event("pt_b", phone=NUMBER))
        assert await w.rows("SELECT phone, kind FROM kind_opt_out") == [(NUMBER, "serum")]


class TestErasureThroughTheCommand:
    async def test_a_plain_stop_still_holds_for_a_new_patient(
        self, world: World, tmp_path: Path
    ) -> None:
        """`aftercare erase` beside the running app prints the answer; nothing of her is left;
        a new treatment to her number is recorded with every message suppressed."""
        w = world
        await _replied_and_escalated(w)
        assert "no more texts" in await w.text("STOP")
        code, out = await w.erase_by_cli(tmp_path)
        assert code == 0, out
        answer = json.loads(out)
        assert answer["patient_id"] == "pt_77" and answer["erased"]["opt_outs"] == 1
        assert await w.found() == []
        assert NUMBER not in out and NAME not in out
        plan = await _new_patient_plan(w)
        assert {m["status"] for m in plan["messages"]} == {"suppressed"}
        again, out = await w.erase_by_cli(tmp_path)
        assert again == 0 and json.loads(out) == answer


class TestWithoutANumberKey:
    async def test_erasure_is_refused_and_nothing_changes(self, client: Any) -> None:
        """No `[privacy] number_keys`: 409 saying so; the patient's plan stands as it was."""
        raw = encode(completed_event(treatment={"completed_at": "2026-11-25T14:30:00Z"}))
        response = await client.post(
            "/v1/clinics/glow/events", data=raw, headers=signed(raw, secret=SECRET)
        )
        assert response.status == 202
        response = await client.post("/v1/clinics/glow/patients/pt_77/erase", headers=bearer(TOKEN))
        assert response.status == 409 and "number_keys" in (await response.json())["detail"]
        listed = await client.get("/v1/clinics/glow/patients/pt_77/messages", headers=bearer(TOKEN))
        assert {m["status"] for m in (await listed.json())["messages"]} == {"scheduled"}
