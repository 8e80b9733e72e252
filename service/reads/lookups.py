"""What the read API answers (contract §8): a treatment, a patient's messages, a clinic's messages.

Every function takes the clinic id from the authorized path and looks only at that clinic's
rows, so an id of another clinic is simply not found. Phone numbers come out masked.
The message lists' paged query (keyset on `(send_at, id)`) is `storage.read_pages`'; everything
else it reads through `storage.store`.
"""

from __future__ import annotations

from service.errors import NotFound
from service.reads.answers import MessagePage, TreatmentAnswer
from service.reads.paging import Cursor, MessageQuery, encode_cursor
from service.reads.views import listed_view, message_view, treatment_view
from service.storage import read_pages, store
from service.storage.models import Message, Treatment, row_id
from service.storage.transactions import Session, Transactions


async def treatment(
    transactions: Transactions, clinic_id: str, external_id: str
) -> TreatmentAnswer:
    """The clinic's treatment and its messages, each with its history; NotFound otherwise."""
    return await transactions.read(lambda s: _treatment(s, clinic_id, external_id))


def _treatment(s: Session, clinic_id: str, external_id: str) -> TreatmentAnswer:
    found = store.find_treatment(s, clinic_id, external_id)
    if found is None:
        raise NotFound("this clinic has no treatment with that id")
    return treatment_answer(s, found)


def treatment_answer(s: Session, found: Treatment) -> TreatmentAnswer:
    """A treatment and its messages as stored now, each with its history."""
    patient = store.patient(s, found.patient_id)
    assert patient is not None, "a treatment has a patient"
    messages = store.messages_of(s, row_id(found.id))
    history = store.history_of(s, [m.id for m in messages])
    return {
        "treatment": treatment_view(found, patient.external_id),
        "messages": [message_view(m, history[m.id]) for m in messages],
    }


async def clinic_messages(
    transactions: Transactions, clinic_id: str, page: MessageQuery
) -> MessagePage:
    """A page of the clinic's messages, newest first, and the cursor of the next page."""
    return await transactions.read(lambda s: _page(s, clinic_id, page))


async def patient_messages(
    transactions: Transactions, clinic_id: str, external_id: str, page: MessageQuery
) -> MessagePage:
    """A page of one patient's messages, newest first; NotFound for an unknown patient."""
    return await transactions.read(lambda s: _patient_page(s, clinic_id, external_id, page))


def _patient_page(s: Session, clinic_id: str, external_id: str, page: MessageQuery) -> MessagePage:
    patient = store.find_patient(s, clinic_id, external_id)
    if patient is None:
        raise NotFound("this clinic has no patient with that id")
    return _page(s, clinic_id, page, patient_id=row_id(patient.id))


def _page(
    s: Session, clinic_id: str, page: MessageQuery, *, patient_id: int | None = None
) -> MessagePage:
    rows = message_page(s, clinic_id, page, patient_id=patient_id)
    shown = rows[: page.limit]
    history = store.history_of(s, [m.id for m, _, _ in shown])
    next_cursor = None
    if len(rows) > page.limit:  # one more than a page was found: there is a next page
        last = shown[-1][0]
        next_cursor = encode_cursor(Cursor(last.send_at, last.id))
    return {
        "messages": [
            listed_view(m, history[m.id], treatment_id=t, patient_id=p) for m, t, p in shown
        ],
        "next_cursor": next_cursor,
    }


def message_page(
    s: Session, clinic_id: str, page: MessageQuery, *, patient_id: int | None = None
) -> list[tuple[Message, str, str]]:
    """Up to `page.limit + 1` of the clinic's messages, newest first by (send_at, id), each
    with its treatment's and patient's ids as the clinic knows them."""
    after = page.after
    return read_pages.message_page(
        s,
        clinic_id,
        patient_id=patient_id,
        status=page.status,
        since=page.since,
        until=page.until,
        before=None if after is None else (after.send_at, after.id),
        limit=page.limit + 1,
    )
