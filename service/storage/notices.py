"""What the changes of a message or a number tell a clinic's system (contract §11): the
notifications written beside them, in their transaction (`outbox.record_all`).

The hot paths (claims, send outcomes, status callbacks) ask `Audience` first: built once from
the settings, it says which statuses any clinic wants to hear about, so a service whose
clinics have no endpoint pays one empty-set test per batch and writes nothing. Only when some
clinic listens are the messages looked up (one statement a batch) for the notification's data.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from service.config import TYPES, Settings
from service.observability.masking import mask_phone
from service.storage.models import Status
from service.storage.outbox import Notice, record_all
from service.storage.tables import MESSAGE, PATIENT, TREATMENT

M = MESSAGE.c
# A message's status that a notification reports, and the notification's type.
MESSAGE_TYPES = {
    Status.FAILED: "message.failed",
    Status.UNDELIVERED: "message.undelivered",
    Status.EXPIRED: "message.expired",
    Status.DELIVERED: "message.delivered",
}


class Audience:
    """Which clinics asked for which notification types; built once from the settings."""

    def __init__(self, settings: Settings) -> None:
        self.by_type: dict[str, frozenset[str]] = {
            t: frozenset(
                clinic_id
                for clinic_id, clinic in settings.clinics.items()
                if clinic.notifications is not None and clinic.notifications.wants(t)
            )
            for t in TYPES
        }
        # The message statuses some clinic wants to hear of: empty, nothing is looked up.
        self.statuses = frozenset(s for s, t in MESSAGE_TYPES.items() if self.by_type[t])

    def wants(self, clinic_id: str, type_: str) -> bool:
        """Whether `clinic_id` asked for notifications of `type_`."""
        return clinic_id in self.by_type.get(type_, ())


_MESSAGE_COLUMNS = (
    M.id,
    M.clinic_id,
    M.step,
    M.kind,
    M.phone,
    M.status,
    M.error_code,
    M.reason,
    TREATMENT.c.external_id,
    PATIENT.c.external_id,
)
_MESSAGES = sa.select(*_MESSAGE_COLUMNS).join(TREATMENT, TREATMENT.c.id == M.treatment_id)
_MESSAGES = _MESSAGES.join(PATIENT, PATIENT.c.id == M.patient_id)
_BY_ID = _MESSAGES.where(M.id.in_(sa.bindparam("ids", expanding=True))).order_by(M.id)
# A sid's messages: the one it was recorded for and those merged into it (docs/merging.md).
_LEAD = MESSAGE.alias("lead")
_SIDS: sa.BindParameter[str] = sa.bindparam("sids", expanding=True)
_BY_SID = _MESSAGES.where(
    sa.or_(
        M.provider_id.in_(_SIDS),
        M.merged_into.in_(sa.select(_LEAD.c.id).where(_LEAD.c.provider_id.in_(_SIDS))),
    )
).order_by(M.id)


def message_data(row: Sequence[Any]) -> dict[str, Any]:
    """`data` of a message.* notification: the message as the clinic knows it, `to` masked."""
    message_id, _clinic, step, kind, phone, status, code, reason, treatment, patient = row
    return {
        "message": {
            "id": message_id,
            "step": step,
            "kind": kind,
            "treatment_id": treatment,
            "patient_id": patient,
            "to": mask_phone(phone),
            "status": status,
            "error_code": code,
            "reason": reason,
        }
    }


def messages_changed(
    conn: sa.Connection,
    settings: Settings,
    audience: Audience,
    *,
    ids: Collection[str] = (),
    sids: Collection[str] = (),
    now: datetime,
) -> list[str]:
    """Notify the messages of `ids` (or of provider ids `sids`) that now stand in a status a
    clinic of theirs asked to hear of; the notifications' ids. Call it in the transaction
    that moved them, for messages that moved there in it."""
    if not audience.statuses or not (ids or sids):
        return []
    found: list[Any] = []
    if ids:
        found += conn.execute(_BY_ID, {"ids": sorted(set(ids))}).all()
    if sids:
        found += conn.execute(_BY_SID, {"sids": sorted(set(sids))}).all()
    notices = []
    seen: set[str] = set()
    for row in found:
        type_ = MESSAGE_TYPES.get(Status(row.status)) if row.status in audience.statuses else None
        if type_ and row.id not in seen and audience.wants(row.clinic_id, type_):
            seen.add(row.id)
            notices.append(Notice(row.clinic_id, type_, message_data(row)))
    return record_all(conn, settings, notices, now=now)


def expired_by_event(
    conn: sa.Connection, settings: Settings, message_id: str, *, now: datetime
) -> None:
    """Notify `message.expired` for a message an event's correction moved past its expiry (a
    rare path: the audience is built for it)."""
    messages_changed(conn, settings, Audience(settings), ids=[message_id], now=now)


_PATIENTS_OF = (
    sa.select(PATIENT.c.external_id)
    .where(PATIENT.c.clinic_id == sa.bindparam("clinic"), PATIENT.c.phone == sa.bindparam("phone"))
    .order_by(PATIENT.c.external_id)
)


def opted_out(
    conn: sa.Connection,
    settings: Settings,
    *,
    clinic_id: str,
    phone: str,
    scope: str | list[str] = "all",
    type_: str = "patient.opted_out",
    now: datetime,
) -> str | None:
    """Notify `clinic_id` that `phone` opted out (or, `type_` patient.opted_in, back in) of
    `scope` ("all", or the kinds): the clinic's patients with that number, the number masked.
    Nothing when the clinic did not ask for `type_`."""
    target = settings.clinics[clinic_id].notifications
    if target is None or not target.wants(type_):
        return None
    patients = conn.execute(_PATIENTS_OF, {"clinic": clinic_id, "phone": phone}).scalars().all()
    data = {"patient_ids": list(patients), "phone": mask_phone(phone), "scope": scope}
    ids = record_all(conn, settings, [Notice(clinic_id, type_, data)], now=now)
    return ids[0] if ids else None
