"""What the read API answers (SPEC §8): a treatment, a patient's messages, a clinic's messages.

Every function takes the clinic id from the authorized path and looks only at that clinic's
rows, so an id of another clinic is simply not found. Phone numbers come out masked.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from service.errors import NotFound
from service.planning.planner import row_id
from service.reads.answers import MessagePage, TreatmentAnswer
from service.reads.paging import Cursor, MessageQuery, encode_cursor
from service.reads.views import listed_view, message_view, treatment_view
from service.storage import store
from service.storage.models import Patient, Treatment


async def treatment(
    sessions: async_sessionmaker[AsyncSession], clinic_id: str, external_id: str
) -> TreatmentAnswer:
    """The clinic's treatment and its messages, each with its history; NotFound otherwise."""
    async with sessions() as s:
        found = await store.find_treatment(s, clinic_id, external_id)
        if found is None:
            raise NotFound("this clinic has no treatment with that id")
        return await treatment_answer(s, found)


async def treatment_answer(s: AsyncSession, found: Treatment) -> TreatmentAnswer:
    """A treatment and its messages as stored now, each with its history."""
    patient = await s.get(Patient, found.patient_id)
    assert patient is not None, "a treatment has a patient"
    messages = await store.messages_of(s, row_id(found.id))
    history = await store.history_of(s, [m.id for m in messages])
    return {
        "treatment": treatment_view(found, patient.external_id),
        "messages": [message_view(m, history[m.id]) for m in messages],
    }


async def clinic_messages(
    sessions: async_sessionmaker[AsyncSession], clinic_id: str, page: MessageQuery
) -> MessagePage:
    """A page of the clinic's messages, newest first, and the cursor of the next page."""
    async with sessions() as s:
        return await _page(s, clinic_id, page)


async def patient_messages(
    sessions: async_sessionmaker[AsyncSession],
    clinic_id: str,
    external_id: str,
    page: MessageQuery,
) -> MessagePage:
    """A page of one patient's messages, newest first; NotFound for an unknown patient."""
    async with sessions() as s:
        patient = await store.find_patient(s, clinic_id, external_id)
        if patient is None:
            raise NotFound("this clinic has no patient with that id")
        return await _page(s, clinic_id, page, patient_id=row_id(patient.id))


async def _page(
    s: AsyncSession, clinic_id: str, page: MessageQuery, *, patient_id: int | None = None
) -> MessagePage:
    rows = await store.message_page(s, clinic_id, page, patient_id=patient_id)
    shown = rows[: page.limit]
    history = await store.history_of(s, [m.id for m, _, _ in shown])
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
