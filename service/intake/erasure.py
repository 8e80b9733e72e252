"""Erasing a patient on a clinic's request (contract §19), through the API or `aftercare erase`.

One write transaction does it all (`storage.erasure`), with its audit row and, where the
clinic listed it, its `patient.erased` notification; then, on SQLite, the write-ahead log is
copied into the database file and truncated, so that no older image of a page holds what was
overwritten (the writer deletes securely: freed space is zeroed, `database`).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime

from service.config import Settings
from service.errors import Conflict, NotFound
from service.reads.erasures import ErasureAnswer, view
from service.storage import audit, erasure, outbox
from service.storage.transactions import Session, Transactions

log = logging.getLogger("aftercare.erasure")
NOTICE = "patient.erased"


async def erase(
    transactions: Transactions,
    settings: Settings,
    clinic_id: str,
    patient_id: str,
    *,
    actor: str,
    now: datetime,
) -> ErasureAnswer:
    """Erase the clinic's patient `patient_id` (again: the first answer); NotFound when the
    clinic never reported them, Conflict when no `[privacy] number_keys` is configured."""
    keys = settings.privacy.keys()
    if not keys:
        raise Conflict(
            "erasure needs [privacy] number_keys (AFTERCARE_PRIVACY__NUMBER_KEYS) to keep the "
            "number's opt-outs as a keyed hash; see docs/privacy.md"
        )

    def work(s: Session) -> tuple[ErasureAnswer, bool]:
        done = erasure.erase(s, clinic_id, patient_id, keys=keys, now=now)
        if done is None:
            raise NotFound("this clinic has no patient with that id")
        if done.fresh:
            _record(s, settings, clinic_id, patient_id, actor=actor, done=done, now=now)
        return view(patient_id, done.erased_at, done.counts), done.fresh

    answer, fresh = await transactions.write(work)
    if fresh and not await transactions.purge_log():
        log.warning("the write-ahead log could not be truncated after an erasure; retry later")
    return answer


def _record(
    s: Session,
    settings: Settings,
    clinic_id: str,
    patient_id: str,
    *,
    actor: str,
    done: erasure.Erasure,
    now: datetime,
) -> None:
    """The erasure's audit row and `patient.erased` (only where the clinic listed it)."""
    conn = s.connection()
    detail = json.dumps(done.counts, separators=(",", ":"))
    audit.record(
        conn,
        clinic_id=clinic_id,
        actor=actor,
        action=audit.PATIENT_ERASED,
        patient_id=patient_id,
        detail=detail,
        now=now,
    )
    data = {"patient_id": patient_id}
    outbox.record(conn, settings, clinic_id=clinic_id, type_=NOTICE, data=data, now=now)
