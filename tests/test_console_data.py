"""The console's data and actions (contract §16), on the conversation tests' world (the real app,
the real twilio client against a fake Twilio, texts posted as Twilio signs them), on SQLite and
PostgreSQL: inbox items for each source, leaving when done or acknowledged; another clinic's items
invisible and their actions refused; the patient timeline in local time; search; audit rows for each
action; the audit API's pages; the inbox gauges on /metrics."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from typing import Any

import pytest
from sqlmodel import col, select

from service.conversations import inbox_actions
from service.errors import NotFound
from service.reads import inbox, timeline
from service.storage.audit import Audit
from service.web.keys import TRANSACTIONS
from tests.fixtures.conversations import Conversation, Start, start
from tests.helpers.client import bearer
from tests.processes import until_async as until
from tests.support import OTHER_TOKEN, TOKEN

__all__ = ["start"]
GLOW, NURSE_EMAIL = ["glow"], "nurse@glow.example"


async def items(c: Conversation, clinics: list[str] = GLOW) -> list[inbox.InboxItem]:
    now = datetime.now(UTC)
    found: list[inbox.InboxItem] = await c.client.app[TRANSACTIONS].read(
        lambda s: inbox.items(s, clinics, now=now)
    )
    return found


async def write(c: Conversation, act: Any) -> Any:
    return await c.client.app[TRANSACTIONS].write(act)


async def audit_actions(c: Conversation) -> list[str]:
    def rows(s: Any) -> list[str]:
        return [a.action for a in s.exec(select(Audit).order_by(col(Audit.id))).all()]

    return list(await c.client.app[TRANSACTIONS].read(rows))


class TestInbox:
    async def test_a_watch_reply_is_an_item_until_marked_done(self, start: Start) -> None:
        c = await start()
        await c.checked_in()
        version = await c.client.app[TRANSACTIONS].read(lambda s: inbox.inbox_version(s, GLOW))
        await c.text("2")  # watch
        [item] = await items(c)
        assert item["kind"] == "reply" and item["level"] == "watch" and item["text"] == "2"
        assert item["patient"] == {"patient_id": "pt_77", "first_name": "Ana", "last_four": "0123"}
        after = await c.client.app[TRANSACTIONS].read(lambda s: inbox.inbox_version(s, GLOW))
        assert after != version
        assert await items(c, ["other"]) == []
        with pytest.raises(NotFound):
            await write(
                c,
                lambda s: inbox_actions.mark_done(
                    s, ["other"], item["id"], by="x", now=datetime.now(UTC)
                ),
            )
        now = datetime.now(UTC)
        done = await write(
            c, lambda s: inbox_actions.mark_done(s, GLOW, item["id"], by=NURSE_EMAIL, now=now)
        )
        assert not done.already and done.by == NURSE_EMAIL
        assert await items(c) == []
        again = await write(
            c, lambda s: inbox_actions.mark_done(s, GLOW, item["id"], by="b@x", now=now)
        )
        assert again.already and again.by == NURSE_EMAIL
        assert await audit_actions(c) == ["item_done"]

    async def test_an_ok_reply_is_no_item_and_text_outside_a_window_is(self, start: Start) -> None:
        c = await start()
        await c.checked_in()
        await c.text("1")  # ok
        assert await items(c) == []
        await c.text("STOP")  # a keyword: no item
        assert await items(c) == []
        await c.text("hello?", sender="+14155550999")  # unknown number, the clinic's line
        [item] = await items(c)
        assert item["level"] == "outside" and item["patient"]["patient_id"] is None

    async def test_an_escalation_is_acknowledged_from_the_console_and_leaves(
        self, start: Start
    ) -> None:
        c = await start()
        await c.checked_in()
        await c.text("3")
        [item] = await items(c)
        assert item["kind"] == "escalation" and item["level"] == "urgent" and item["code"]
        escalation_id = item["id"].split(":", 1)[1]
        now = datetime.now(UTC)
        with pytest.raises(NotFound):
            await write(
                c, lambda s: inbox_actions.acknowledge(s, ["other"], escalation_id, by="x", now=now)
            )
        view = await write(
            c, lambda s: inbox_actions.acknowledge(s, GLOW, escalation_id, by=NURSE_EMAIL, now=now)
        )
        assert view["state"] == "acknowledged" and view["acknowledged_by"] == NURSE_EMAIL
        assert await items(c) == []
        [api] = (await c.escalations())["escalations"]
        assert api["acknowledged_by"] == NURSE_EMAIL
        assert await audit_actions(c) == ["escalation_acknowledged"]

    async def test_a_failed_message_is_an_item(self, start: Start) -> None:
        c = await start()
        c.fake.behaviours["+14155550177"] = "error:21211"
        plan = await c.plan(id="pt_9", first_name="Bo", phone="+14155550177")

        async def failed() -> bool:
            status: str = (await c.messages(plan))[0]["status"]
            return status == "failed"

        await until(failed)
        [item] = await items(c)
        assert item["kind"] == "message" and item["status"] == "failed"
        assert item["step"] == "check-in" and item["error_code"] == 21211
        assert item["patient"]["last_four"] == "0177"
        metrics = await (await c.client.get("/metrics")).text()
        assert 'aftercare_inbox_items_open{kind="message"} 1.0' in metrics


class TestPatient:
    async def test_the_timeline_holds_the_checkin_and_the_reply_in_local_time(
        self, start: Start
    ) -> None:
        c = await start()
        await c.checked_in(timezone="America/New_York")
        await c.text("2")
        now = datetime.now(UTC)
        found = await write(
            c,
            lambda s: inbox_actions.view_patient(s, GLOW, "glow", "pt_77", by=NURSE_EMAIL, now=now),
        )
        assert found["patient"]["last_four"] == "0123" and "+1415" not in str(found["patient"])
        kinds = [e["type"] for e in found["entries"]]
        assert kinds.index("message") < kinds.index("reply")
        reply = next(e for e in found["entries"] if e["type"] == "reply")
        assert reply["level"] == "watch" and str(reply["at"].tzinfo) == "America/New_York"
        checkin = next(e for e in found["entries"] if e["step"] == "check-in")
        assert checkin["history"] and checkin["text"].startswith("Hi Ana")
        number = await write(
            c,
            lambda s: inbox_actions.reveal_number(
                s, GLOW, "glow", "pt_77", by=NURSE_EMAIL, now=now
            ),
        )
        assert number == "+14155550123"
        with pytest.raises(NotFound):
            await write(
                c,
                lambda s: inbox_actions.view_patient(
                    s, ["other"], "glow", "pt_77", by="x", now=now
                ),
            )
        assert await audit_actions(c) == ["patient_viewed", "number_revealed"]

    async def test_search_by_name_id_and_last_four(self, start: Start) -> None:
        c = await start()
        await c.plan(due_in=3600)
        for q in ("an", "ANA", "pt_77", "0123"):
            found = await c.client.app[TRANSACTIONS].read(
                lambda s, q=q: timeline.search(s, GLOW, q)
            )
            assert [f["patient_id"] for f in found] == ["pt_77"], q
        assert (
            await c.client.app[TRANSACTIONS].read(lambda s: timeline.search(s, ["other"], "ana"))
            == []
        )


class TestAuditApi:
    async def test_pages_newest_first_and_refuses_another_clinics_token(self, start: Start) -> None:
        c = await start()
        await c.plan(due_in=3600)
        for _ in range(3):
            now = datetime.now(UTC)
            reveal = partial(inbox_actions.reveal_number, by=NURSE_EMAIL, now=now)
            await write(c, lambda s, reveal=reveal: reveal(s, GLOW, "glow", "pt_77"))
        first = await c.client.get("/v1/clinics/glow/audit?limit=2", headers=bearer(TOKEN))
        page = await first.json()
        assert [a["action"] for a in page["audit"]] == ["number_revealed"] * 2
        assert (
            page["audit"][0]["actor"] == NURSE_EMAIL and page["audit"][0]["patient_id"] == "pt_77"
        )
        rest = await c.client.get(
            "/v1/clinics/glow/audit", params={"cursor": page["next_cursor"]}, headers=bearer(TOKEN)
        )
        last = await rest.json()
        assert len(last["audit"]) == 1 and last["next_cursor"] is None
        ids = [a["id"] for a in page["audit"] + last["audit"]]
        assert ids == sorted(ids, reverse=True)
        refused = await c.client.get("/v1/clinics/glow/audit", headers=bearer(OTHER_TOKEN))
        assert refused.status == 403
        bad = await c.client.get("/v1/clinics/glow/audit?limit=500&cursor=x", headers=bearer(TOKEN))
        assert bad.status == 422
        spec = await (await c.client.get("/openapi.json")).json()
        assert "/v1/clinics/{clinic_id}/audit" in spec["paths"]
        assert "AuditPage" in spec["components"]["schemas"]
