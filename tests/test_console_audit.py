"""The audit trail of the console's actions (contract §16, "Audit"), read back through
`GET /v1/clinics/{clinic_id}/audit` as a clinic's system reads it: a nurse who mistypes her
password, signs in, acknowledges an escalation, marks a reply done, opens a patient, reveals the
number and texts her leaves one row for each, newest first, her email the actor, no secret and
no text of the patient's in any row. The real app and fake Twilio of the conversation tests."""

from __future__ import annotations

import json
import re
from typing import Any

from service.clock import SystemClock
from tests.fixtures.console import EMAIL, add_account, csrf_of, sign_in
from tests.fixtures.conversations import Conversation, Start, start
from tests.helpers.client import bearer
from tests.support import PHONE, TOKEN

__all__ = ["start"]
PAGE = "/console/clinics/glow/patients/pt_77"
ACTIONS = [
    "sign_in_failed",
    "sign_in",
    "escalation_acknowledged",
    "item_done",
    "patient_viewed",
    "patient_viewed",  # Show number answers with the page itself, the number on it
    "number_revealed",
    "staff_text_sent",
    "patient_viewed",  # the page Send leads back to
]


def _field(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]+)"', page)
    assert found, name
    return found.group(1)


async def _post(c: Conversation, path: str, **form: str) -> Any:
    answer = await c.client.post(path, data=form, allow_redirects=False)
    assert answer.status in (200, 303), await answer.text()
    return answer


async def _walk(c: Conversation) -> None:
    """Every console action of contract §16's audit list, once, as a nurse does them."""
    assert (await sign_in(c.client, password="not her password at all")).status == 401
    assert (await sign_in(c.client)).status == 303
    inbox = await (await c.client.get("/console/")).text()
    csrf = csrf_of(inbox)
    await _post(c, "/console/inbox/acknowledge", csrf=csrf, escalation=_field(inbox, "escalation"))
    inbox = await (await c.client.get("/console/")).text()
    await _post(c, "/console/inbox/done", csrf=csrf, item=_field(inbox, "item"))
    page = await (await c.client.get(PAGE)).text()
    await _post(c, f"{PAGE}/number", csrf=csrf)
    request = _field(page, "request")
    await _post(c, f"{PAGE}/messages", csrf=csrf, request=request, message="Call us, please.")
    await c.client.get(PAGE)


async def test_every_console_action_is_listed_by_the_audit_api(start: Start, database: str) -> None:
    """Nine rows, newest first, each naming the action and the patient where there is one;
    the nurse's email as actor; neither her password nor the patient's words or number."""
    c = await start()
    await c.checked_in()
    await c.text("3 it is swollen and hot")
    await c.text("2")
    await add_account(database, clock=SystemClock())
    await _walk(c)
    answer = await c.client.get("/v1/clinics/glow/audit", headers=bearer(TOKEN))
    assert answer.status == 200
    rows = (await answer.json())["audit"]
    assert [r["action"] for r in reversed(rows)] == ACTIONS
    assert {r["actor"] for r in rows} == {EMAIL}
    assert {r["patient_id"] for r in rows if r["action"] not in ("sign_in", "sign_in_failed")} == {
        "pt_77"
    }
    said = json.dumps(rows)
    for secret in ("not her password", "swollen", "Call us", PHONE, PHONE[-4:]):
        assert secret not in said
