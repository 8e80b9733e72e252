"""Properties of the patient's day (service.planning.day): whatever the messages, window and
limit, no local day goes over the limit, a day within it is untouched, a check-in goes only
after every lower-ranked text of its day, and a merged text goes at its earliest part's time
(so never later than any part, nor in quiet hours when its parts are outside them)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from service.planning.day import Due, merge_groups, merged_into, over_limit
from service.planning.timing import QuietHours
from tests.helpers.timing import utc

ZONES = [ZoneInfo("America/Los_Angeles"), ZoneInfo("Europe/Berlin"), ZoneInfo("Asia/Kolkata")]
KINDS = ["rebook", "serum", "prep", "aftercare", "checkin", "alert", "staff"]
START = utc(2026, 3, 1)
QUIET = QuietHours(time(21), time(8))


@st.composite
def days_of_messages(draw: st.DrawFn) -> list[Due[int]]:
    """Up to 14 messages over three days, often close together (minutes apart)."""
    count = draw(st.integers(0, 14))
    minutes = draw(st.lists(st.integers(0, 3 * 24 * 60), min_size=count, max_size=count))
    kinds = draw(st.lists(st.sampled_from(KINDS), min_size=count, max_size=count))
    gone = draw(st.lists(st.sampled_from([False] * 4 + [True]), min_size=count, max_size=count))
    return [
        Due(i, kind, START + timedelta(minutes=m), gone=g)
        for i, (kind, m, g) in enumerate(zip(kinds, minutes, gone, strict=True))
    ]


WINDOWS = st.sampled_from([timedelta(0), timedelta(minutes=30), timedelta(hours=2)])
LIMITS = st.integers(1, 5)
SETTINGS = settings(max_examples=150, deadline=None)


def texts_per_day(messages: list[Due[int]], window: timedelta, tz: ZoneInfo) -> Counter[date]:
    """Counted texts (groups, alert and staff left out) per local day."""
    return Counter(
        g[0].send_at.astimezone(tz).date()
        for g in merge_groups(messages, window)
        if g[0].kind not in ("alert", "staff")
    )


def days_of(messages: list[Due[int]], window: timedelta, tz: ZoneInfo) -> dict[int, date]:
    """Each message's day as the limit counts it: its text's send time's, that of the text's
    first part (a merged text may cross midnight)."""
    return {
        m.id: g[0].send_at.astimezone(tz).date() for g in merge_groups(messages, window) for m in g
    }


class TestDailyLimitProperties:
    @SETTINGS
    @given(messages=days_of_messages(), window=WINDOWS, limit=LIMITS, tz=st.sampled_from(ZONES))
    def test_no_local_day_is_over_the_limit(
        self, messages: list[Due[int]], window: timedelta, limit: int, tz: ZoneInfo
    ) -> None:
        """What stays counts at most `limit` texts a local day (or what has gone out already,
        which cannot be taken back, when that alone is more)."""
        skipped = over_limit(messages, limit=limit, window=window, tz=tz)
        kept = [m for m in messages if m.id not in skipped]
        gone = texts_per_day([m for m in messages if m.gone], window, tz)
        for day, n in texts_per_day(kept, window, tz).items():
            assert n <= max(limit, gone[day])

    @SETTINGS
    @given(messages=days_of_messages(), window=WINDOWS, limit=LIMITS, tz=st.sampled_from(ZONES))
    def test_a_day_within_the_limit_is_untouched(
        self, messages: list[Due[int]], window: timedelta, limit: int, tz: ZoneInfo
    ) -> None:
        """Nothing of a day at or under the limit is skipped, nor any alert or staff text, nor
        a text that has gone out."""
        skipped = over_limit(messages, limit=limit, window=window, tz=tz)
        per_day = texts_per_day(messages, window, tz)
        day_of = days_of(messages, window, tz)
        for m in messages:
            if m.id in skipped:
                assert per_day[day_of[m.id]] > limit
                assert m.kind not in ("alert", "staff")
                assert not m.gone

    @SETTINGS
    @given(messages=days_of_messages(), window=WINDOWS, limit=LIMITS, tz=st.sampled_from(ZONES))
    def test_a_checkin_is_never_skipped_while_a_lower_ranked_text_stays(
        self, messages: list[Due[int]], window: timedelta, limit: int, tz: ZoneInfo
    ) -> None:
        """A skipped check-in's day keeps, of texts still to go, only ones that hold a
        check-in themselves."""
        skipped = over_limit(messages, limit=limit, window=window, tz=tz)
        day_of = days_of(messages, window, tz)
        for group in merge_groups(messages, window):
            if group[0].kind in ("alert", "staff") or group[0].gone or group[0].id in skipped:
                continue  # only a text still to go could have gone instead
            day = group[0].send_at.astimezone(tz).date()
            lower = all(m.kind != "checkin" for m in group)
            lost_checkin = any(
                m.kind == "checkin" and m.id in skipped and day_of[m.id] == day for m in messages
            )
            assert not (lower and lost_checkin)

    @SETTINGS
    @given(messages=days_of_messages(), window=WINDOWS, limit=LIMITS, tz=st.sampled_from(ZONES))
    def test_a_group_is_skipped_whole(
        self, messages: list[Due[int]], window: timedelta, limit: int, tz: ZoneInfo
    ) -> None:
        """A merged text is one text: skipped whole or kept whole."""
        skipped = over_limit(messages, limit=limit, window=window, tz=tz)
        for group in merge_groups(messages, window):
            assert len({m.id in skipped for m in group}) == 1


class TestMergeProperties:
    @SETTINGS
    @given(messages=days_of_messages(), window=WINDOWS, tz=st.sampled_from(ZONES))
    def test_merging_never_moves_a_message_later_nor_into_quiet_hours(
        self, messages: list[Due[int]], window: timedelta, tz: ZoneInfo
    ) -> None:
        """A group goes at its earliest part's time: no part later than its own time, and the
        text outside quiet hours when its parts were landed outside them."""
        outside = [m for m in messages if not QUIET.contains(m.send_at.astimezone(tz).time())]
        groups = merge_groups(outside, window)
        assert sorted(m.id for g in groups for m in g) == sorted(m.id for m in outside)
        for group in groups:
            goes_at = group[0].send_at
            assert all(goes_at <= m.send_at <= goes_at + window for m in group)
            assert not QUIET.contains(goes_at.astimezone(tz).time())
            if len(group) > 1:
                assert all(m.kind not in ("alert", "staff") and not m.gone for m in group)

    @SETTINGS
    @given(messages=days_of_messages(), tz=st.sampled_from(ZONES))
    def test_a_zero_window_merges_nothing(self, messages: list[Due[int]], tz: ZoneInfo) -> None:
        """Merging off: every message is its own text."""
        assert merged_into(messages, timedelta(0)) == {}


class TestDailyLimitExamples:
    def test_rank_order_and_ties(self) -> None:
        """Past the limit, rebook goes first, then serum; of two serums the later one."""
        day = utc(2026, 3, 2, 17)
        messages = [
            Due("checkin", "checkin", day),
            Due("serum-am", "serum", day + timedelta(hours=1)),
            Due("rebook", "rebook", day + timedelta(hours=2)),
            Due("serum-pm", "serum", day + timedelta(hours=3)),
            Due("alert", "alert", day + timedelta(hours=4)),
        ]
        got = over_limit(messages, limit=2, window=timedelta(0), tz=ZoneInfo("UTC"))
        assert got == {"rebook", "serum-pm"}

    def test_a_group_ranks_as_its_highest_member(self) -> None:
        """A serum merged with a check-in is kept over a lone aftercare note."""
        day = datetime(2026, 3, 2, 17, tzinfo=UTC)
        messages = [
            Due("checkin", "checkin", day),
            Due("serum", "serum", day + timedelta(minutes=10)),
            Due("note", "aftercare", day + timedelta(hours=3)),
        ]
        assert merged_into(messages, timedelta(minutes=30)) == {"serum": "checkin"}
        got = over_limit(messages, limit=1, window=timedelta(minutes=30), tz=ZoneInfo("UTC"))
        assert got == {"note"}
