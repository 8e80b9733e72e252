"""New treatments written in batches: the hot path of `treatment.completed`.

Events that arrive together are written together (group commit): one transaction and about
ten Core statements per batch, however many events and messages it holds. The plan is
computed before the write, from the event alone; the write looks up what is stored in one
query per table and re-plans only an event whose stored patient changes the plan (a time
zone or locale the event leaves out).

Only the plain case is batched: a webhook id and a treatment never seen before. Anything
else (a replay, a conflict, a plan that exists) and any batch that meets a unique constraint
(another replica got there first) is answered `None`, and `Ingest` takes that event the
careful way, one transaction per event, which stores a new plan with the same `Intake.store`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from service.config import Settings
from service.intake import fresh_rows
from service.intake.fresh_rows import Fresh, NewTreatment, Written
from service.intake.payloads import TreatmentCompleted
from service.intake.planner import Planner
from service.planning import day, protocols
from service.planning.day import Due
from service.planning.timing import zone
from service.storage import daily, erasure, message_rows, reasons, treatment_rows
from service.storage.group_commit import GroupCommit, Spawn
from service.storage.message_rows import new_message, new_message_ids
from service.storage.models import Status
from service.storage.transactions import Transactions

BATCH = 64
EVENT_TYPE = "treatment.completed"


class Intake:
    """Plans fresh events and writes them by group commit."""

    def __init__(
        self,
        *,
        settings: Settings,
        transactions: Transactions,
        planner: Planner,
        spawn: Spawn = asyncio.create_task,
    ) -> None:
        self.settings = settings
        self.transactions = transactions
        self.planner = planner
        self._group: GroupCommit[Fresh, Written | None] = GroupCommit(
            self._write, batch=BATCH, keys=Fresh.keys, spawn=spawn
        )
        self._sqlite = transactions.dialect == "sqlite"

    def prepare(
        self,
        clinic_id: str,
        webhook_id: str,
        digest: str,
        event: TreatmentCompleted,
        *,
        now: datetime,
    ) -> Fresh:
        """The event planned for a patient as the event describes them."""
        data = event.data
        serum = (
            data.treatment.serum or self.settings.protocols[data.treatment.protocol].default_serum
        )
        treatment = NewTreatment(
            data.treatment.id,
            data.treatment.protocol,
            data.treatment.completed_at,
            data.treatment.session_number,
            data.treatment.sessions_planned,
            serum,
        )
        timezone = data.patient.timezone or self.settings.clinics[clinic_id].timezone
        fresh = Fresh(
            clinic_id, webhook_id, digest, event, treatment, timezone, data.patient.locale, [], now
        )
        fresh.plan = self._plan(fresh)
        self._build(fresh, reason=_reason(fresh, stopped=False))
        return fresh

    def _build(
        self,
        fresh: Fresh,
        *,
        reason: str | None,
        kinds: dict[str, str] | None = None,
        others: Sequence[Due[str]] = (),
    ) -> None:
        """The plan's rows and the answer, made before the write so that it only stores them
        (their patient and treatment ids are set once those rows exist). `kinds`: the kinds
        the number stopped (`STOP <WORD>`), each with its word. `others`: the patient's
        scheduled messages at the clinic, of other plans, that the daily limit counts too."""
        phone = fresh.event.data.patient.phone
        fresh.reason = reason
        stopped = kinds or {}
        ids = new_message_ids(fresh.now, len(fresh.plan))
        fresh.messages = [
            new_message(
                p,
                clinic_id=fresh.clinic_id,
                treatment_id=0,
                patient_id=0,
                phone=phone,
                reason=reason or _kind_reason(stopped, p.kind),
                now=fresh.now,
                message_id=i,
            )
            for p, i in zip(fresh.plan, ids, strict=True)
        ]
        self._limit(fresh, others)
        fresh.written = fresh_rows.written(fresh)
        if self._sqlite:
            fresh.rows = message_rows.sqlite_rows(fresh.messages)

    def _limit(self, fresh: Fresh, others: Sequence[Due[str]]) -> None:
        """The daily limit over the plan and the patient's `others` (docs/day.md): a message
        of the plan it skips is stored cancelled, one of `others` is cancelled after the
        insert (`fresh.limited`); and which of the plan's messages merge (`fresh.merged`)."""
        sms = self.settings.sms
        scheduled = [
            Due(m.id, m.kind, m.send_at) for m in fresh.messages if m.status == Status.SCHEDULED
        ]
        skipped = day.over_limit(
            [*others, *scheduled],
            limit=sms.max_per_day,
            window=sms.merge_window,
            tz=zone(fresh.timezone),
        )
        for m in fresh.messages:
            if m.id in skipped:
                m.status, m.reason = Status.CANCELLED, reasons.DAILY_LIMIT
        fresh.limited = sorted(skipped - {m.id for m in scheduled})
        kept = [d for d in scheduled if d.id not in skipped]
        fresh.merged = day.merged_into(kept, sms.merge_window)

    async def write(self, fresh: Fresh) -> Written | None:
        """Store the event's plan with others arriving at once; None when it is not fresh."""
        return await self._group.submit(fresh)

    @property
    def waiting(self) -> int:
        """Events waiting for the next write."""
        return self._group.waiting

    async def close(self) -> None:
        """Finish the writes under way."""
        await self._group.drain()

    def _plan(self, fresh: Fresh) -> list[protocols.PlannedMessage]:
        t, patient = fresh.treatment, fresh.event.data.patient
        return self.planner.plan_for(
            fresh.clinic_id,
            t.protocol,
            protocols.Treatment(
                completed_at=t.completed_at,
                session_number=t.session_number,
                sessions_planned=t.sessions_planned,
                serum=t.serum,
            ),
            protocols.Recipient(
                first_name=patient.first_name, timezone=zone(fresh.timezone), locale=fresh.locale
            ),
        )

    async def _write(self, batch: Sequence[Fresh]) -> list[Written | None]:
        try:
            return await self.transactions.write(lambda s: self.store(s.connection(), batch))
        except IntegrityError:
            return [None] * len(batch)  # someone else stored one of them: go one by one

    def store(self, conn: sa.Connection, batch: Sequence[Fresh]) -> list[Written | None]:
        """Store the plans of `batch` in the transaction of `conn`: patients, treatments,
        messages, history and the event rows; None for an event that is not fresh (its webhook
        id or treatment is stored). The one write of a new treatment, batched or alone."""
        fresh = _unseen(conn, batch)
        if not fresh:
            return [None] * len(batch)
        patients = self._patients(conn, fresh)
        numbers = [(f.clinic_id, f.event.data.patient.phone) for f in fresh]
        secrets = self.settings.privacy.keys()
        erasure.unhash(conn, numbers, keys=secrets)  # an erased patient's STOP, named again
        stopped = treatment_rows.opted_out(conn, numbers, secrets=secrets)
        kinds = treatment_rows.kind_opt_outs(conn, numbers, secrets=secrets)
        limited = self.settings.sms.max_per_day is not None
        others = daily.scheduled_due(conn, patients, now=fresh[0].now) if limited else {}
        treatments = treatment_rows.insert_treatments(
            conn,
            [
                {**fresh_rows.treatment_row(f), "patient_id": patients[i]}
                for i, f in enumerate(fresh)
            ],
        )
        for f, patient in zip(fresh, patients, strict=True):
            number = (f.clinic_id, f.event.data.patient.phone)
            reason = _reason(f, stopped=number in stopped)
            theirs = others.get(patient, [])
            # Re-planned, the number said STOP (or STOP <WORD>), or other plans share its days.
            if f.written is None or reason != f.reason or number in kinds or theirs:
                self._build(f, reason=reason, kinds=kinds.get(number), others=theirs)
        ids = list(zip(treatments, patients, strict=True))
        message_rows.insert(
            conn,
            [(f.messages, pair) for f, pair in zip(fresh, ids, strict=True)],
            made=[f.rows for f in fresh] if self._sqlite else None,
        )
        daily.cancel(
            conn, [i for f in fresh for i in f.limited], now=fresh[0].now, source=EVENT_TYPE
        )
        treatment_rows.insert_events(conn, [fresh_rows.event_row(f) for f in fresh])
        written = {id(f): f.written for f in fresh}
        return [written.get(id(f)) for f in batch]

    def _patients(self, conn: sa.Connection, fresh: Sequence[Fresh]) -> list[int]:
        """Each event's patient id: inserted, or updated as the event reports them (and the
        event re-planned when the stored zone or locale, which it left out, changes it)."""
        keys = [(f.clinic_id, f.event.data.patient.id) for f in fresh]
        stored = treatment_rows.stored_patients(conn, keys)
        new = [f for f, key in zip(fresh, keys, strict=True) if key not in stored]
        ids = dict(
            zip(
                map(id, new),
                treatment_rows.insert_patients(conn, [fresh_rows.patient_row(f) for f in new]),
                strict=True,
            )
        )
        updates = []
        for f, key in zip(fresh, keys, strict=True):
            if key in stored:
                ids[id(f)], timezone, locale = stored[key]
                self._follow(f, timezone=timezone, locale=locale)
                updates.append({**fresh_rows.patient_row(f), "p_id": ids[id(f)]})
        treatment_rows.update_patients(conn, updates)
        return [ids[id(f)] for f in fresh]

    def _follow(self, fresh: Fresh, *, timezone: str, locale: str | None) -> None:
        patient = fresh.event.data.patient
        zone_now, locale_now = patient.timezone or timezone, patient.locale or locale
        if (zone_now, locale_now) != (fresh.timezone, fresh.locale):
            fresh.timezone, fresh.locale = zone_now, locale_now
            fresh.plan = self._plan(fresh)
            fresh.written = None


def suppression(*, consents: bool, stopped: bool) -> str | None:
    """Why a new plan is recorded but not sent (SPEC §5), or None: the patient has not
    consented, or their number said STOP to the clinic."""
    if not consents:
        return reasons.NO_CONSENT
    return reasons.OPTED_OUT if stopped else None


def _kind_reason(stopped: dict[str, str], kind: str) -> str | None:
    word = stopped.get(kind)
    return None if word is None else reasons.opted_out_of(word)


def _reason(fresh: Fresh, *, stopped: bool) -> str | None:
    return suppression(consents=fresh.event.data.patient.sms_consent, stopped=stopped)


def _unseen(conn: sa.Connection, batch: Sequence[Fresh]) -> list[Fresh]:
    """The events whose webhook id and treatment are both new."""
    events = treatment_rows.seen_events(conn, [(f.clinic_id, f.webhook_id) for f in batch])
    treatments = treatment_rows.seen_treatments(
        conn, [(f.clinic_id, f.treatment.external_id) for f in batch]
    )
    return [
        f
        for f in batch
        if (f.clinic_id, f.webhook_id) not in events
        and (f.clinic_id, f.treatment.external_id) not in treatments
    ]
