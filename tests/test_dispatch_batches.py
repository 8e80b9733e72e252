"""Dispatch in batches (issue 5): a burst costs a few statements per batch, not a few per message: a
claim of many is two statements, outcomes recorded together one transaction, a lone outcome one
statement, a message's two outcomes apply in order; and on PostgreSQL the claim does not walk the
messages sent since the last ANALYZE. The real dispatcher and database, the real twilio client
against a fake Twilio server; the clock is a fake the test moves (tests/fixtures/dispatch.py).
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session

from service.storage import claims
from service.storage.models import Message, Status
from service.storage.moves import Move
from tests.fixtures.dispatch import World, world
from tests.helpers.statements import statements

__all__ = ["world"]  # the fixture, from tests/fixtures/dispatch.py


def explain_claim(conn: Any, *, now: datetime) -> list[str]:
    """PostgreSQL's plan for the claim statement, as EXPLAIN prints it."""
    compiled = claims._CLAIM.compile(dialect=conn.dialect)
    params = compiled.construct_params(
        {"now": now, "limit": 64, "instance": "x", "lease_until": now + timedelta(seconds=60)}
    )
    # The IN lists are the statement's own constants (statuses): written in as literals.
    sql = re.sub(
        r"__\[POSTCOMPILE_(\w+)\]",
        lambda m: ", ".join(f"'{v}'" for v in params[m.group(1)]),
        compiled.string,
    )
    rows = conn.exec_driver_sql(
        "EXPLAIN " + sql,
        tuple(
            params[name]
            for name in compiled.positiontup or []
            if not isinstance(params[name], list)
        ),
    ).all()
    return [row[0] for row in rows]


def node(plan: list[str], marker: str) -> list[str]:
    """The lines of the first EXPLAIN node whose line holds `marker`, with its children."""
    start = next(i for i, line in enumerate(plan) if marker in line)
    depth = len(plan[start]) - len(plan[start].lstrip())
    end = next(
        (i for i in range(start + 1, len(plan)) if len(plan[i]) - len(plan[i].lstrip()) <= depth),
        len(plan),
    )
    return plan[start:end]


def besides_history(seen: list[str]) -> list[str]:
    """The statements but the history inserts and SQLite's `BEGIN IMMEDIATE` (the ones every
    transaction that writes has; on SQLite the whole transaction is one hop to the writer's
    thread however many statements it runs, so what is counted is SQLAlchemy's work)."""
    return [sql for sql in seen if not sql.startswith(("INSERT INTO message_history", "BEGIN"))]


class TestBatches:
    """A burst costs a few statements per batch, not a few per message (issue 5)."""

    async def plan_many(self, world: World, n: int) -> list[Message]:
        """`n` patients' plans; the messages due now (their first, on the fake clock)."""
        for i in range(n):
            patient = {"id": f"pt_{i}", "phone": f"+1415555{100 + i:04d}"}
            planned = await world.plan(patient=patient)  # every stored message
        world.at(min(m.send_at for m in planned))
        due = [m for m in planned if m.send_at <= world.clock.now()]
        assert len(due) == n
        return due

    async def test_a_claim_of_many_is_two_statements(self, world: World) -> None:
        """Twenty due messages: one statement claims and vets them all, one marks footers
        (the history rows go with them, not as statements of their own)."""
        firsts = await self.plan_many(world, 20)
        with statements(world.transactions) as seen:
            claimed = await world.dispatcher.claim(limit=50)
        assert sorted(c.id for c in claimed) == sorted(m.id for m in firsts)
        assert all(c.footer for c in claimed)  # each is its number's first message
        assert [sql.split()[0] for sql in besides_history(seen)] == ["UPDATE", "UPDATE"], seen
        assert await world.statuses(firsts[0].id) == ["scheduled", "sending"]

    async def test_outcomes_written_together_are_one_transaction(self, world: World) -> None:
        """Twenty outcomes recorded at once go in at most two writes of a few statements."""
        firsts = await self.plan_many(world, 20)
        claimed = await world.dispatcher.claim(limit=50)
        moves = [
            Move(
                c.id,
                Status.SENT,
                "accepted as queued",
                values={"provider_id": f"SM{i:032d}", "lease_until": None},
            )
            for i, c in enumerate(claimed)
        ]
        with statements(world.transactions) as seen:
            moved = await asyncio.gather(*(world.dispatcher.recorder.record(m) for m in moves))
        assert moved == [True] * 20
        assert len(seen) <= 12, seen
        stored = await world.message(firsts[-1].id)
        assert stored.status == Status.SENT and stored.provider_id is not None
        assert await world.statuses(firsts[-1].id) == ["scheduled", "sending", "sent"]

    async def test_a_lone_outcome_is_one_statement(self, world: World) -> None:
        """An outcome written alone (a steady trickle of sends) is one conditional UPDATE,
        which also tells whether status callbacks for its sid came first."""
        [first] = await self.plan_many(world, 1)
        [claim] = await world.dispatcher.claim(limit=1)
        sent = Move(
            claim.id,
            Status.SENT,
            "accepted as queued",
            values={"provider_id": "SM" + "2" * 32, "lease_until": None},
            provider_id="SM" + "2" * 32,
        )
        with statements(world.transactions) as seen:
            assert await world.dispatcher.recorder.record(sent)
        # PostgreSQL first takes the sid's advisory lock (a callback racing the outcome)
        assert len([q for q in besides_history(seen) if "pg_advisory" not in q]) == 1, seen
        assert await world.statuses(first.id) == ["scheduled", "sending", "sent"]
        again = Move(claim.id, Status.SENT, "a second answer")
        assert not await world.dispatcher.recorder.record(again)  # not from `sending` now
        assert await world.statuses(first.id) == ["scheduled", "sending", "sent"]

    async def test_a_claim_does_not_walk_the_messages_sent_since_the_last_analyze(
        self, world: World, database: str
    ) -> None:
        """PostgreSQL: with statistics from before a run of sends, the claim's question "was
        this number reached" is still looked up by (clinic_id, phone), not by walking every
        message sent since through the status index (6,000 sends: 80 ms a claim of 64)."""
        if not database.startswith("postgresql"):
            pytest.skip("PostgreSQL's planner")
        [first] = await self.plan_many(world, 1)

        def _tx15(s: Session) -> Any:
            conn = s.connection()
            conn.exec_driver_sql(  # one number with many messages: its index looks dear
                "INSERT INTO message (id, clinic_id, treatment_id, patient_id, step, kind, seq,"
                " phone, locale, body, send_at, due_at, expires_at, status, attempts, footer,"
                " updated_at) SELECT 'msg_bulk_' || g, clinic_id, treatment_id, patient_id,"
                " 'bulk', kind, g, phone, locale, body, send_at + g * interval '1 minute',"
                " due_at + g * interval '1 minute', expires_at + g * interval '1 minute',"
                " status, attempts, footer, updated_at"
                f" FROM message, generate_series(1, 20000) g WHERE id = '{first.id}'"
            )
            conn.exec_driver_sql("ANALYZE message")  # every message scheduled
            conn.exec_driver_sql(
                "UPDATE message SET status = 'sent' WHERE id IN "
                "(SELECT id FROM message ORDER BY send_at DESC LIMIT 600)"
            )
            plan = explain_claim(conn, now=world.clock.now())
            return plan

        plan = await world.transactions.write(_tx15)
        assert "ix_message_status_due" not in " ".join(node(plan, "on message other")), plan

    async def test_two_outcomes_of_one_message_apply_in_order(self, world: World) -> None:
        """A message's second outcome waits for the next write instead of racing the first."""
        [first] = await self.plan_many(world, 1)
        [claim] = await world.dispatcher.claim(limit=1)
        hold = Move(
            claim.id,
            Status.SENDING,
            "timeout; reconcile later",
            values={"lease_until": world.clock.now()},
        )
        sent = Move(
            claim.id,
            Status.SENT,
            "found at the provider",
            values={"provider_id": "SM" + "1" * 32, "lease_until": None},
        )
        recorder = world.dispatcher.recorder
        recorded = await asyncio.gather(recorder.record(hold), recorder.record(sent))
        assert list(recorded) == [True, True]
        assert await world.statuses(first.id) == ["scheduled", "sending", "sending", "sent"]
