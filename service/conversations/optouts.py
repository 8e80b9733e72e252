"""STOP and START, for everything or for the kinds of one word (SPEC §7, §12): the opt-out
rows, the cancelled messages and the notifications, in the reply's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, delete, select

from service.config import Settings
from service.storage import notices, numbers, reasons, store
from service.storage.conversation_tables import KindOptOut
from service.storage.models import ALERT, Message, MessageHistory, OptOut, Status


def stop(s: Session, settings: Settings, clinic_id: str, phone: str, *, now: datetime) -> None:
    """Plain STOP: the number opted out of everything at the clinic; its pending cancelled."""
    new = not store.is_opted_out(s, clinic_id, phone, keys=settings.privacy.keys())
    if new:
        s.add(OptOut(clinic_id=clinic_id, phone=phone, at=now, source="sms-stop"))
    cancel_pending(s, clinic_id, phone, kinds=None, reason=reasons.OPTED_OUT, now=now)
    if new:  # a STOP said again tells the clinic nothing new
        _tell_clinic(s, settings, clinic_id, phone, "all", "patient.opted_out", now=now)


def start(s: Session, settings: Settings, clinic_id: str, phone: str, *, now: datetime) -> None:
    """Plain START: every opt-out of the number at the clinic, of all kinds or some, lifted."""
    forms = numbers.forms(settings.privacy.keys(), phone)  # and as an erasure kept it
    lifted = _deleted(
        s,
        delete(OptOut).where(col(OptOut.clinic_id) == clinic_id, col(OptOut.phone).in_(forms)),
    ) + _deleted(
        s,
        delete(KindOptOut).where(
            col(KindOptOut.clinic_id) == clinic_id, col(KindOptOut.phone).in_(forms)
        ),
    )
    if lifted:
        _tell_clinic(s, settings, clinic_id, phone, "all", "patient.opted_in", now=now)


def stop_kinds(
    s: Session, settings: Settings, clinic_id: str, phone: str, word: str, *, now: datetime
) -> None:
    """`STOP <WORD>`: the number opted out of the word's kinds at the clinic; their scheduled
    messages cancelled (`opted out of serum`)."""
    kinds = settings.sms.stop_words[word]
    forms = numbers.forms(settings.privacy.keys(), phone)
    said = s.exec(
        select(KindOptOut.kind).where(
            KindOptOut.clinic_id == clinic_id, col(KindOptOut.phone).in_(forms)
        )
    ).all()
    new = [k for k in kinds if k not in said]
    for kind in new:
        s.add(KindOptOut(clinic_id=clinic_id, phone=phone, kind=kind, word=word, at=now))
    cancel_pending(s, clinic_id, phone, kinds=kinds, reason=reasons.opted_out_of(word), now=now)
    if new:
        _tell_clinic(s, settings, clinic_id, phone, list(kinds), "patient.opted_out", now=now)


def start_kinds(
    s: Session, settings: Settings, clinic_id: str, phone: str, word: str, *, now: datetime
) -> None:
    """`START <WORD>`: the word's kinds resume (a plain STOP stays in force)."""
    kinds = settings.sms.stop_words[word]
    forms = numbers.forms(settings.privacy.keys(), phone)
    lifted = _deleted(
        s,
        delete(KindOptOut).where(
            col(KindOptOut.clinic_id) == clinic_id,
            col(KindOptOut.phone).in_(forms),
            col(KindOptOut.kind).in_(kinds),
        ),
    )
    if lifted:
        _tell_clinic(s, settings, clinic_id, phone, list(kinds), "patient.opted_in", now=now)


def _tell_clinic(
    s: Session,
    settings: Settings,
    clinic_id: str,
    phone: str,
    scope: str | list[str],
    type_: str,
    *,
    now: datetime,
) -> None:
    """Notify the clinic, when it asked for `type_`, that the number opted out or back in of
    `scope` ("all", or the kinds), in the reply's transaction (`notices.opted_out`)."""
    notices.opted_out(
        s.connection(),
        settings,
        clinic_id=clinic_id,
        phone=phone,
        scope=scope,
        type_=type_,
        now=now,
    )


def _deleted(s: Session, statement: sa.Delete) -> int:
    return int(s.exec(statement).rowcount)


def cancel_pending(
    s: Session,
    clinic_id: str,
    phone: str,
    *,
    kinds: Sequence[str] | None,
    reason: str,
    now: datetime,
) -> list[str]:
    """Cancel the number's scheduled messages at the clinic (of `kinds`, or all but alerts);
    each move conditional on the row still being scheduled, and kept in history."""
    query = select(Message.id).where(
        Message.clinic_id == clinic_id,
        Message.phone == phone,
        Message.status == Status.SCHEDULED,
        Message.kind != ALERT,
    )
    if kinds is not None:
        query = query.where(col(Message.kind).in_(kinds))
    ids = list(s.exec(query).all())
    cancelled = []
    for message_id in ids:
        moved = s.exec(
            sa.update(Message)
            .where(col(Message.id) == message_id, col(Message.status) == Status.SCHEDULED)
            .values(status=Status.CANCELLED, reason=reason, updated_at=now)
        )
        if moved.rowcount:
            s.add(
                MessageHistory(
                    message_id=message_id, at=now, status=Status.CANCELLED, detail=reason
                )
            )
            cancelled.append(message_id)
    return cancelled
