"""The queries of `ACK` (contract §10, §14): an escalation's code, and which escalation an
on-call number was texted last. Served by the partial unique index on the clinic's open
escalations' codes and by the message index on (clinic_id, phone)."""

from __future__ import annotations

import sqlalchemy as sa

from service.storage.conversation_tables import ESCALATION, EscalationState
from service.storage.models import ALERT, Status
from service.storage.tables import MESSAGE

E, M = ESCALATION.c, MESSAGE.c
# An alert in these statuses was (or is being) texted; a failed or expired one was not.
TEXTED = (Status.SCHEDULED, Status.SENDING, Status.SENT, Status.DELIVERED)

_OPEN_CODES = (
    sa.select(E.code)
    .where(E.clinic_id == sa.bindparam("clinic"), E.state == EscalationState.OPEN)
    .where(E.code.is_not(None))
    .order_by(E.opened_at, E.id)
)
_BY_CODE = (
    sa.select(E.id)
    .where(E.clinic_id == sa.bindparam("clinic"), E.code == sa.bindparam("code"))
    .order_by((E.state == EscalationState.OPEN).desc(), E.opened_at.desc())
    .limit(1)
)
_LAST_ALERTED = (
    sa.select(M.step)
    .where(M.clinic_id == sa.bindparam("clinic"), M.phone == sa.bindparam("phone"))
    .where(M.kind == ALERT, M.status.in_(TEXTED))
    .order_by(M.send_at.desc(), M.id.desc())
    .limit(1)
)


def open_codes(conn: sa.Connection, clinic_id: str) -> list[str]:
    """The codes of the clinic's open escalations, oldest first."""
    return [str(code) for code in conn.execute(_OPEN_CODES, {"clinic": clinic_id}).scalars()]


def named(conn: sa.Connection, clinic_id: str, code: str) -> str | None:
    """The id of the clinic's escalation with `code`: the open one, else the latest."""
    return conn.execute(_BY_CODE, {"clinic": clinic_id, "code": code}).scalar()


def last_alerted(conn: sa.Connection, clinic_id: str, phone: str) -> str | None:
    """The id of the escalation the clinic last texted `phone` an alert (or reminder) of."""
    return conn.execute(_LAST_ALERTED, {"clinic": clinic_id, "phone": phone}).scalar()
