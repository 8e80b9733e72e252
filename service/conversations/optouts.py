"""STOP and START, for everything or for the kinds of one word (contract §7, §12): the opt-out
rows, the cancelled messages and the notifications, in the reply's transaction."""

from __future__ import annotations

from datetime import datetime

from service.config import Settings
from service.storage import notices, numbers, opt_outs, reasons, store
from service.storage.opt_outs import cancel_pending
from service.storage.transactions import Session


def stop(s: Session, settings: Settings, clinic_id: str, phone: str, *, now: datetime) -> None:
    """Plain STOP: the number opted out of everything at the clinic; its pending cancelled."""
    new = not store.is_opted_out(s, clinic_id, phone, keys=settings.privacy.keys())
    if new:
        opt_outs.add(s, clinic_id, phone, now=now, source="sms-stop")
    cancel_pending(s, clinic_id, phone, kinds=None, reason=reasons.OPTED_OUT, now=now)
    if new:  # a STOP said again tells the clinic nothing new
        _tell_clinic(s, settings, clinic_id, phone, "all", "patient.opted_out", now=now)


def start(s: Session, settings: Settings, clinic_id: str, phone: str, *, now: datetime) -> None:
    """Plain START: every opt-out of the number at the clinic, of all kinds or some, lifted."""
    forms = numbers.forms(settings.privacy.keys(), phone)  # and as an erasure kept it
    lifted = opt_outs.lift(s, clinic_id, forms)
    if lifted:
        _tell_clinic(s, settings, clinic_id, phone, "all", "patient.opted_in", now=now)


def stop_kinds(
    s: Session, settings: Settings, clinic_id: str, phone: str, word: str, *, now: datetime
) -> None:
    """`STOP <WORD>`: the number opted out of the word's kinds at the clinic; their scheduled
    messages cancelled (`opted out of serum`)."""
    kinds = settings.sms.stop_words[word]
    forms = numbers.forms(settings.privacy.keys(), phone)
    said = opt_outs.kinds_opted_out(s, clinic_id, forms)
    new = [k for k in kinds if k not in said]
    for kind in new:
        opt_outs.add_kind(s, clinic_id, phone, kind=kind, word=word, now=now)
    cancel_pending(s, clinic_id, phone, kinds=kinds, reason=reasons.opted_out_of(word), now=now)
    if new:
        _tell_clinic(s, settings, clinic_id, phone, list(kinds), "patient.opted_out", now=now)


def start_kinds(
    s: Session, settings: Settings, clinic_id: str, phone: str, word: str, *, now: datetime
) -> None:
    """`START <WORD>`: the word's kinds resume (a plain STOP stays in force)."""
    kinds = settings.sms.stop_words[word]
    forms = numbers.forms(settings.privacy.keys(), phone)
    lifted = opt_outs.lift_kinds(s, clinic_id, forms, kinds)
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
