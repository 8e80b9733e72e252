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
from dataclasses import replace

from service.config import Settings
from service.intake import fresh_rows
from service.intake.envelope import Envelope
from service.intake.fresh_rows import Fresh, NewTreatment, Written
from service.intake.payloads import TreatmentCompleted
from service.intake.planner import Planner
from service.planning import day, protocols
from service.planning.day import Due
from service.planning.timing import zone
from service.storage import daily, erasure, message_rows, reasons, treatment_rows
from service.storage.group_commit import GroupCommit, Spawn
from service.storage.message_rows import NewMessage, new_message, new_message_ids
from service.storage.models import Status
from service.storage.transactions import Connection, IntegrityError, Transactions

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
        self._dialect = transactions.dialect  # how its messages' rows are made (message_rows)

    def prepare(self, envelope: Envelope, event: TreatmentCompleted) -> Fresh:
        """The event planned for a patient as the event describes them (`envelope.now`: the
        plan's time)."""
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
        timezone = data.patient.timezone or self.settings.clinics[envelope.clinic_id].timezone
        return self._made(
            envelope,
            event,
            treatment,
            timezone,
            data.patient.locale,
            reason=_reason(event, stopped=False),
        )

    def _made(
        self,
        envelope: Envelope,
        event: TreatmentCompleted,
        treatment: NewTreatment,
        timezone: str,
        locale: str | None,
        *,
        reason: str | None,
        plan: tuple[protocols.PlannedMessage, ...] | None = None,
        kinds: dict[str, str] | None = None,
        others: Sequence[Due[str]] = (),
    ) -> Fresh:
        """The event planned for `timezone` and `locale` (unless `plan` is made for them
        already), its rows and its answer, made before the write so that it only stores them
        (their patient and treatment ids are set once those rows exist). `reason`: why its
        messages are suppressed. `kinds`: the kinds the number stopped (`STOP <WORD>`), each
        with its word. `others`: the patient's scheduled messages at the clinic, of other
        plans, that the daily limit counts too."""
        if plan is None:
            plan = self._plan(envelope, event, treatment, timezone, locale)
        phone = event.data.patient.phone
        stopped = kinds or {}
        ids = new_message_ids(envelope.now, len(plan))
        made = [
            new_message(
                p,
                clinic_id=envelope.clinic_id,
                treatment_id=0,
                patient_id=0,
                phone=phone,
                reason=reason or _kind_reason(stopped, p.kind),
                now=envelope.now,
                message_id=i,
            )
            for p, i in zip(plan, ids, strict=True)
        ]
        messages, limited, merged = self._limit(made, timezone, others)
        return Fresh(
            envelope,
            event,
            treatment,
            timezone,
            locale,
            plan,
            reason,
            messages,
            fresh_rows.written(envelope, event, treatment, messages, merged),
            message_rows.made_ahead(messages, dialect=self._dialect),
            limited,
        )

    def _limit(
        self, messages: Sequence[NewMessage], timezone: str, others: Sequence[Due[str]]
    ) -> tuple[tuple[NewMessage, ...], tuple[str, ...], dict[str, str]]:
        """The daily limit over a plan's `messages` and the patient's `others`
        (docs/day.md): the messages, those it skips stored cancelled; the ids of `others` it
        skips, cancelled after the insert; and which of the plan's messages merge (each
        with the first of its text)."""
        sms = self.settings.sms
        scheduled = [Due(m.id, m.kind, m.send_at) for m in messages if m.status == Status.SCHEDULED]
        skipped = day.over_limit(
            [*others, *scheduled],
            limit=sms.max_per_day,
            window=sms.merge_window,
            tz=zone(timezone),
        )
        if skipped:
            messages = [
                replace(m, status=Status.CANCELLED, reason=reasons.DAILY_LIMIT)
                if m.id in skipped
                else m
                for m in messages
            ]
        limited = tuple(sorted(skipped - {m.id for m in scheduled}))
        kept = [d for d in scheduled if d.id not in skipped]
        return tuple(messages), limited, day.merged_into(kept, sms.merge_window)

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

    def _plan(
        self,
        envelope: Envelope,
        event: TreatmentCompleted,
        t: NewTreatment,
        timezone: str,
        locale: str | None,
    ) -> tuple[protocols.PlannedMessage, ...]:
        planned = self.planner.plan_for(
            envelope.clinic_id,
            t.protocol,
            protocols.Treatment(
                completed_at=t.completed_at,
                session_number=t.session_number,
                sessions_planned=t.sessions_planned,
                serum=t.serum,
            ),
            protocols.Recipient(
                first_name=event.data.patient.first_name, timezone=zone(timezone), locale=locale
            ),
        )
        return tuple(planned)

    async def _write(self, batch: Sequence[Fresh]) -> list[Written | None]:
        try:
            return await self.transactions.write(lambda s: self.store(s.connection(), batch))
        except IntegrityError:
            return [None] * len(batch)  # someone else stored one of them: go one by one

    def store(self, conn: Connection, batch: Sequence[Fresh]) -> list[Written | None]:
        """Store the plans of `batch` in the transaction of `conn`: patients, treatments,
        messages, history and the event rows; None for an event that is not fresh (its webhook
        id or treatment is stored). The one write of a new treatment, batched or alone;
        `batch` is left as it was (an event that meets a rival goes again one by one)."""
        unseen = _unseen(conn, batch)
        if not unseen:
            return [None] * len(batch)
        now = unseen[0].envelope.now
        places = self._patients(conn, unseen)
        patients = [patient for patient, _, _ in places]
        numbers = [(f.envelope.clinic_id, f.event.data.patient.phone) for f in unseen]
        secrets = self.settings.privacy.keys()
        erasure.unhash(conn, numbers, keys=secrets)  # an erased patient's STOP, named again
        stopped = treatment_rows.opted_out(conn, numbers, secrets=secrets)
        kinds = treatment_rows.kind_opt_outs(conn, numbers, secrets=secrets)
        limited = self.settings.sms.max_per_day is not None
        others = daily.scheduled_due(conn, patients, now=now) if limited else {}
        treatments = treatment_rows.insert_treatments(
            conn,
            [
                {**fresh_rows.treatment_row(f), "patient_id": patients[i]}
                for i, f in enumerate(unseen)
            ],
        )
        fresh = []
        for f, number, (patient, timezone, locale) in zip(unseen, numbers, places, strict=True):
            reason = _reason(f.event, stopped=number in stopped)
            theirs = others.get(patient, [])
            followed = (timezone, locale) == (f.timezone, f.locale)
            # Re-planned, the number said STOP (or STOP <WORD>), or other plans share its days.
            if not followed or reason != f.reason or number in kinds or theirs:
                f = self._made(
                    f.envelope,
                    f.event,
                    f.treatment,
                    timezone,
                    locale,
                    reason=reason,
                    plan=f.plan if followed else None,
                    kinds=kinds.get(number),
                    others=theirs,
                )
            fresh.append(f)
        ids = list(zip(treatments, patients, strict=True))
        message_rows.insert(
            conn,
            [(f.messages, pair) for f, pair in zip(fresh, ids, strict=True)],
            made=[f.rows for f in fresh],
        )
        daily.cancel(conn, [i for f in fresh for i in f.limited], now=now, source=EVENT_TYPE)
        treatment_rows.insert_events(conn, [fresh_rows.event_row(f) for f in fresh])
        written = {id(f): made.written for f, made in zip(unseen, fresh, strict=True)}
        return [written.get(id(f)) for f in batch]

    def _patients(
        self, conn: Connection, fresh: Sequence[Fresh]
    ) -> list[tuple[int, str, str | None]]:
        """Each event's patient id, inserted or updated as the event reports them, with the
        zone and locale its plan follows: the stored patient's where the event leaves them
        out (the event is re-planned when that changes its plan)."""
        keys = [(f.envelope.clinic_id, f.event.data.patient.id) for f in fresh]
        stored = treatment_rows.stored_patients(conn, keys)
        new = [f for f, key in zip(fresh, keys, strict=True) if key not in stored]
        rows = [
            fresh_rows.patient_row(f.envelope, f.event, timezone=f.timezone, locale=f.locale)
            for f in new
        ]
        ids = dict(zip(map(id, new), treatment_rows.insert_patients(conn, rows), strict=True))
        places, updates = [], []
        for f, key in zip(fresh, keys, strict=True):
            if key not in stored:
                places.append((ids[id(f)], f.timezone, f.locale))
                continue
            patient_id, timezone, locale = stored[key]
            patient = f.event.data.patient
            timezone, locale = patient.timezone or timezone, patient.locale or locale
            places.append((patient_id, timezone, locale))
            row = fresh_rows.patient_row(f.envelope, f.event, timezone=timezone, locale=locale)
            updates.append({**row, "p_id": patient_id})
        treatment_rows.update_patients(conn, updates)
        return places


def suppression(*, consents: bool, stopped: bool) -> str | None:
    """Why a new plan is recorded but not sent (contract §5), or None: the patient has not
    consented, or their number said STOP to the clinic."""
    if not consents:
        return reasons.NO_CONSENT
    return reasons.OPTED_OUT if stopped else None


def _kind_reason(stopped: dict[str, str], kind: str) -> str | None:
    word = stopped.get(kind)
    return None if word is None else reasons.opted_out_of(word)


def _reason(event: TreatmentCompleted, *, stopped: bool) -> str | None:
    return suppression(consents=event.data.patient.sms_consent, stopped=stopped)


def _unseen(conn: Connection, batch: Sequence[Fresh]) -> list[Fresh]:
    """The events whose webhook id and treatment are both new."""
    webhooks = [(f.envelope.clinic_id, f.envelope.webhook_id) for f in batch]
    treatments = [(f.envelope.clinic_id, f.treatment.external_id) for f in batch]
    seen_events = treatment_rows.seen_events(conn, webhooks)
    seen_treatments = treatment_rows.seen_treatments(conn, treatments)
    return [
        f
        for f, webhook, treatment in zip(batch, webhooks, treatments, strict=True)
        if webhook not in seen_events and treatment not in seen_treatments
    ]
