"""What a number was texted last: the check-in a reply answers, the
message a text from the number is kept against. Served by the message index on
(clinic_id, phone): a patient's few dozen messages."""

from __future__ import annotations

from typing import NamedTuple

import sqlalchemy as sa
from sqlmodel import Session

from service.storage.tables import MESSAGE

M = MESSAGE.c
# Built once (see `storage.claims`): every reply that is no keyword runs them, found or not.
_LATEST_CHECKIN = (
    sa.select(M.id)
    .where(
        M.clinic_id == sa.bindparam("clinic"),
        M.phone == sa.bindparam("phone"),
        M.kind == "checkin",
        M.sent_at.is_not(None),
    )
    .order_by(M.sent_at.desc())
    .limit(1)
)
_LAST_SENT = (
    sa.select(M.id, M.clinic_id, M.status, M.patient_id)
    .where(
        M.clinic_id.in_(sa.bindparam("scope", expanding=True)),
        M.phone == sa.bindparam("phone"),
        M.sent_at.is_not(None),
    )
    .order_by(M.sent_at.desc())
    .limit(1)
)


class Sent(NamedTuple):
    """The last message a number was sent."""

    id: str
    clinic_id: str
    status: str
    patient_id: int


def latest_checkin(s: Session, clinic_id: str, phone: str) -> str | None:
    """The id of the latest check-in the clinic sent this number, if any."""
    found = s.connection().execute(_LATEST_CHECKIN, {"clinic": clinic_id, "phone": phone})
    return found.scalar()


def last_sent(s: Session, scope: list[str], phone: str) -> Sent | None:
    """The last message sent to the number by the clinics in `scope`."""
    row = s.connection().execute(_LAST_SENT, {"scope": scope, "phone": phone}).first()
    return None if row is None else Sent(*row)
