"""The queries of a staff text (contract §16, `conversations.staff_texts`): where it is filed,
the next free place there, the kind opt-out it may meet, and the latest one a number was sent
(which a reply within 48 h answers)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa

from service.storage import numbers
from service.storage.conversation_tables import KIND_OPT_OUT
from service.storage.models import STAFF
from service.storage.tables import MESSAGE, TREATMENT

M = MESSAGE.c

# Built once (see `claims`): running them again costs binding their parameters.
_LOCK = (
    sa.select(TREATMENT.c.id).where(TREATMENT.c.id == sa.bindparam("treatment")).with_for_update()
)
_TOP_SEQ = sa.select(sa.func.max(M.seq)).where(
    M.treatment_id == sa.bindparam("treatment"), M.step == sa.bindparam("step")
)
_LATEST = (
    sa.select(M.id)
    .where(
        M.clinic_id == sa.bindparam("clinic"),
        M.phone == sa.bindparam("phone"),
        M.kind == STAFF,
        M.sent_at >= sa.bindparam("since", type_=M.sent_at.type),
    )
    .order_by(M.sent_at.desc())
    .limit(1)
)


def next_seq(conn: sa.Connection, treatment_id: int, step: str) -> int:
    """The next free `seq` of `step` under the treatment, the treatment's row locked first
    (on PostgreSQL, FOR UPDATE: two replicas filing a staff text under one treatment at once
    take turns instead of one failing on the unique (treatment, step, seq); on SQLite the
    single writer serializes them already)."""
    conn.execute(_LOCK, {"treatment": treatment_id})
    top = conn.execute(_TOP_SEQ, {"treatment": treatment_id, "step": step}).scalar()
    return 0 if top is None else int(top) + 1


def kind_opted_out(
    conn: sa.Connection, clinic_id: str, phone: str, kind: str, *, keys: Sequence[bytes] = ()
) -> str | None:
    """The `STOP <WORD>` the number said to the clinic that covers `kind` (also as an erasure
    kept it: its hash under one of `keys`), if any."""
    query = sa.select(KIND_OPT_OUT.c.word).where(
        KIND_OPT_OUT.c.clinic_id == clinic_id,
        KIND_OPT_OUT.c.phone.in_(numbers.forms(keys, phone)),
        KIND_OPT_OUT.c.kind == kind,
    )
    return conn.execute(query.limit(1)).scalar()


def latest_sent(conn: sa.Connection, clinic_id: str, phone: str, *, since: datetime) -> str | None:
    """The id of the latest staff text the clinic sent this number at or after `since` (by
    the index on clinic and phone: a patient's few dozen messages)."""
    found = conn.execute(_LATEST, {"clinic": clinic_id, "phone": phone, "since": since})
    return found.scalar()
