"""How a claim's batch meets a clinic's pace (service/delivery/pacing.py, docs/pacing.md): which
texts wait for a turn, which cannot leave before their expiry, which are more than a pace holds.
Pure: the turns are given, no clock is read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from service.delivery.pacing import Pace, held, sort
from service.storage.claims import Claim

NOW = datetime(2026, 12, 7, 8, 30, tzinfo=UTC)


def claim(n: int, *, expires_in: float = 3600, kind: str = "serum") -> Claim:
    return Claim(
        id=f"msg_{n}",
        clinic_id="glow",
        phone="+14155550123",
        body="Serum tonight.",
        send_at=NOW,
        expires_at=NOW + timedelta(seconds=expires_in),
        attempts=1,
        claimed_at=NOW,
        footer=False,
        kind=kind,
        locale="en",
        patient_id=n,
        due_at=NOW,
    )


def queued_pace(length: int, *, next_at: float) -> Pace:
    pace = Pace(gap=0.1, cap=10, clinics=frozenset({"glow"}), next_at=next_at)
    for n in range(length):
        pace.add(claim(100 + n))
    return pace


def test_turns_found_before_a_slow_claim_stay_true_while_texts_leave() -> None:
    """8 waiting at 100.0, one every 0.1 s: the next turn is 100.8 whenever the claim runs.
    A claim whose transaction took 0.5 s (5 of them left meanwhile) finds it 0.3 s away, not
    0.8 s: it must not expire a text that a quicker claim would have sent."""
    pace = queued_pace(8, next_at=100.0)
    found = {pace: held(pace, 100.0)}
    out = sort([claim(1, expires_in=0.35)], {"glow": pace}, found, now=NOW, mono=100.5)
    assert [c.id for _, c in out.queued] == ["msg_1"] and out.late == []


def test_a_late_text_takes_no_turn_from_the_ones_behind_it() -> None:
    pace = queued_pace(3, next_at=50.0)
    batch = [claim(1, expires_in=0.25), claim(2, expires_in=0.35)]
    out = sort(batch, {"glow": pace}, {pace: held(pace, 50.0)}, now=NOW, mono=50.0)
    assert [c.id for c in out.late] == ["msg_1"]  # its turn: 0.3 s away
    assert [c.id for _, c in out.queued] == ["msg_2"]  # the same turn, before its expiry


def test_beyond_the_cap_is_over_but_a_text_a_person_waits_for_is_not() -> None:
    pace = queued_pace(9, next_at=0.0)
    batch = [claim(1), claim(2), claim(3, kind="alert"), claim(4, kind="staff")]
    out = sort(batch, {"glow": pace}, {pace: held(pace, 0.0)}, now=NOW, mono=0.0)
    assert [c.id for _, c in out.queued] == ["msg_1", "msg_3", "msg_4"]
    assert [c.id for c in out.over] == ["msg_2"]


def test_a_text_a_person_waits_for_waits_only_behind_its_kind() -> None:
    pace = queued_pace(9, next_at=0.0)
    out = sort(
        [claim(1, kind="staff", expires_in=0.05)],
        {"glow": pace},
        {pace: held(pace, 0.0)},
        now=NOW,
        mono=0.0,
    )
    assert [c.id for _, c in out.queued] == ["msg_1"]  # leaves now, not after 0.9 s
    pace.add(out.queued[0][1])
    assert pace.queue[0].id == "msg_1"


def test_unpaced_clinics_pass_through() -> None:
    out = sort([claim(1)], {}, {}, now=NOW, mono=0.0)
    assert [c.id for c in out.unpaced] == ["msg_1"]
