"""Requests to the app under test through its aiohttp test client: the API token's header,
signed events posted, the read API's messages of a treatment, and a stored message driven
through statuses as the dispatcher would."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session

from service.storage import store
from service.storage.models import Message, Status
from service.web.keys import TRANSACTIONS
from tests.helpers.events import completed_event, encode, signed
from tests.support import SECRET, TOKEN


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for an API token."""
    return {"Authorization": f"Bearer {token}"}


async def post_event(
    client: Any,
    body: dict[str, Any],
    *,
    clinic: str = "glow",
    secret: str = SECRET,
    msg_id: str | None = None,
) -> Any:
    """POST a signed event to a clinic's events path; the response."""
    raw = encode(body)
    return await client.post(
        f"/v1/clinics/{clinic}/events", data=raw, headers=signed(raw, secret=secret, msg_id=msg_id)
    )


async def post_completed(
    client: Any, treatment: dict[str, Any], patient: dict[str, Any] | None = None, **post: Any
) -> Any:
    """POST a treatment.completed with these fields of its treatment and patient
    (`completed_event`; `post` as `post_event` takes) and check it was accepted (202); the
    answer's body."""
    body = completed_event(treatment=treatment, patient=patient or {})
    response = await post_event(client, body, **post)
    assert response.status == 202, await response.text()
    return await response.json()


async def treatment_messages(client: Any, treatment_id: str = "tr_1") -> dict[str, dict[str, Any]]:
    """The treatment's messages as the read API shows them, by id."""
    url = f"/v1/clinics/glow/treatments/{treatment_id}"
    found = await (await client.get(url, headers=bearer(TOKEN))).json()
    return {m["id"]: m for m in found["messages"]}


async def move_message(client: Any, message_id: str, *statuses: Status) -> None:
    """Drive a stored message through `statuses` as the dispatcher would, history and all."""

    def move(s: Session) -> None:
        found = s.get(Message, message_id)
        assert found is not None
        current = Status(found.status)
        for status in statuses:
            assert store.move(
                s,
                message_id,
                to=status,
                now=datetime.now(UTC),
                allowed_from=[current],
                detail="test",
            )
            current = status

    await client.app[TRANSACTIONS].write(move)
