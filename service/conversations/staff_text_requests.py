"""A staff text sent from the console's `Send` form exactly once per form (contract §16).

`send_once` is `staff_texts.send_staff_text` with the form's one-time token filed in the same
transaction (`storage.staff_text_requests`): the first POST of a form sends; any repeat of
it, even racing the first, sends nothing and is answered as the first was. `sent_by(token)`
is what the page after the POST says ("Sent", or when it will be).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from service.config import Settings
from service.conversations import staff_texts
from service.errors import Conflict
from service.storage import staff_text_requests as requests
from service.storage.staff_text_requests import IntegrityError
from service.storage.transactions import Session, Transactions


@dataclass(frozen=True, kw_only=True)
class Sent:
    """What a form sent: the message, when it goes out (UTC), whether quiet hours hold it
    until then, and whether this answer is a repeat's (nothing sent this time)."""

    message_id: str
    send_at: datetime
    held: bool
    repeated: bool


class FormUsedElsewhere(Conflict):
    """Raised when a form's token was used for another patient (a tampered form)."""


async def send_once(
    *,
    token: str,
    settings: Settings,
    transactions: Transactions,
    arm: staff_texts.Arm,
    clinic_id: str,
    patient_id: str,
    body: str,
    staff_email: str,
    send_anyway: bool,
    now: datetime,
) -> Sent:
    """`send_staff_text` for the form whose one-time token is `token`: the first time, the
    text is filed (raising as `send_staff_text` does) and the dispatcher woken; every later
    time the first's `Sent` is answered (`repeated`), nothing filed, nothing woken."""
    text = staff_texts.clean(body)

    def work(s: Session) -> Sent:
        first = _first(s, token, clinic_id, patient_id)
        if first is not None:
            return first
        filed = staff_texts.file_staff_text(
            s,
            settings,
            clinic_id=clinic_id,
            patient_id=patient_id,
            body=text,
            staff_email=staff_email,
            send_anyway=send_anyway,
            now=now,
        )
        requests.record(
            s.connection(),
            token=token,
            clinic_id=clinic_id,
            patient_id=patient_id,
            message_id=filed.message_id,
            send_at=filed.send_at,
            held=filed.held,
            now=now,
        )
        return Sent(
            message_id=filed.message_id, send_at=filed.send_at, held=filed.held, repeated=False
        )

    try:
        sent = await transactions.write(work)
    except IntegrityError:  # a twin of this POST filed its text first; ours rolled back
        twin = await sent_by(transactions, token, clinic_id=clinic_id, patient_id=patient_id)
        if twin is None:
            raise
        return twin
    if not sent.repeated:
        arm([sent.send_at])
    return sent


async def sent_by(
    transactions: Transactions, token: str, *, clinic_id: str, patient_id: str
) -> Sent | None:
    """What the form `token` sent to this patient (as a repeat), or None if it sent nothing;
    FormUsedElsewhere if it sent to another patient."""
    return await transactions.read(lambda s: _first(s, token, clinic_id, patient_id))


def _first(s: Session, token: str, clinic_id: str, patient_id: str) -> Sent | None:
    row = requests.find(s.connection(), token)
    if row is None:
        return None
    if (row.clinic_id, row.patient_id) != (clinic_id, patient_id):
        raise FormUsedElsewhere("this form was used for another patient: reload the page")
    return Sent(message_id=row.message_id, send_at=row.send_at, held=row.held, repeated=True)
