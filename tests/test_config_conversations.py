"""The conversation's settings (contract §10, §12): checked like texts, reported by TOML path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from service.config import load_settings
from tests.fixtures.config import EXAMPLE, Edit, problems_of, step

REPLIES = {"1": {"level": "ok", "answer": "Good, {first_name}."}}


def _checkin(data: dict[str, Any], **fields: Any) -> None:
    data["protocols"]["mn"]["steps"].append(
        {"key": "check-in", "kind": "checkin", "after": "3d", "text": "How is it?", **fields}
    )


PROBLEMS = [
    pytest.param(
        lambda d: step(d, 1).update(replies=REPLIES),
        ["protocols.mn.steps[1]: only a checkin step may set replies"],
        id="replies-on-a-serum-step",
    ),
    pytest.param(
        lambda d: _checkin(d, replies={"3": {"level": "urgent", "answer": "Call {doctor}."}}),
        ["protocols.mn.steps[3].replies.3.answer: unknown placeholder {doctor}"],
        id="answer-with-unknown-placeholder",
    ),
    pytest.param(
        lambda d: _checkin(d, fallback_answer={"de": "Danke."}),
        ["protocols.mn.steps[3].fallback_answer: no text for clinic locale 'en'"],
        id="fallback-missing-a-clinic-locale",
    ),
    pytest.param(
        lambda d: _checkin(d, replies={"1": {"level": "urgentish", "answer": "x"}}),
        ["protocols.mn.steps[3].replies.1.level: Input should be 'ok'"],
        id="unknown-level",
    ),
    pytest.param(
        lambda d: _checkin(d, replies={"!": {"level": "ok", "answer": "x"}}),
        ["protocols.mn.steps[3].replies: the key '!' has no letter or digit"],
        id="key-of-punctuation",
    ),
    pytest.param(
        lambda d: d["clinics"]["glow"].update(on_call_numbers=["+1415"]),
        ["clinics.glow.on_call_numbers: not a valid E.164 number"],
        id="on-call-not-e164",
    ),
    pytest.param(
        lambda d: d["clinics"]["glow"].update(escalate_levels=["panic"]),
        ["clinics.glow.escalate_levels[0]: Input should be"],
        id="unknown-escalate-level",
    ),
    pytest.param(
        lambda d: d["sms"].update(stop_words={"SERUM NOW": ["serum"]}),
        ["sms.stop_words: 'SERUM NOW': a word of letters"],
        id="stop-word-with-a-space",
    ),
]


@pytest.mark.parametrize(("edit", "expected"), PROBLEMS)
def test_each_problem_is_reported_by_its_toml_path(
    tmp_path: Path, edit: Edit, expected: list[str]
) -> None:
    """The one thing wrong is the one problem reported, starting with its path."""
    problems = problems_of(tmp_path, edit)
    assert len(problems) == len(expected), problems
    for problem, start in zip(problems, expected, strict=True):
        assert problem.startswith(start), problems


class TestExample:
    def test_every_shipped_check_in_asks_for_1_2_3_and_answers_each(self) -> None:
        """Each protocol's first check-in reads 1 ok, 2 watch, 3 urgent; micro-needling's
        day-7 check 1 ok, 2 watch (anything still red after a week needs a look); each with
        red flags in en and es and a fallback, answered in both locales."""
        settings = load_settings(EXAMPLE, environ={}).settings
        for key, protocol in settings.protocols.items():
            checkins = [s for s in protocol.steps if s.kind == "checkin"]
            expected = [{"1": "ok", "2": "watch", "3": "urgent"}]
            if key == "microneedling":
                expected.append({"1": "ok", "2": "watch"})
            assert [{k: r.level for k, r in c.replies.items()} for c in checkins] == expected
            for checkin in checkins:
                assert set(checkin.red_flags) == {"en", "es"}
                assert checkin.fallback_answer is not None
                for r in checkin.replies.values():
                    assert isinstance(r.answer, dict) and set(r.answer) == {"en", "es"}

    def test_micro_needling_asks_for_a_photo_on_day_3_and_checks_again_on_day_7(self) -> None:
        """Contract §17: the day-3 check-in asks for a photo; a day-7 check follows."""
        settings = load_settings(EXAMPLE, environ={}).settings
        steps = [s for s in settings.protocols["microneedling"].steps if s.kind == "checkin"]
        assert [s.days for s in steps] == [[3], [7]]
        for checkin in steps:
            assert isinstance(checkin.text, dict) and "photo" in checkin.text["en"]
            assert "foto" in checkin.text["es"]

    def test_the_clinic_has_an_on_call_number_and_footers_per_locale(self) -> None:
        settings = load_settings(EXAMPLE, environ={}).settings
        assert settings.clinics["glow-downtown"].on_call_numbers == ["+14155550142"]
        assert settings.sms.footer("es-MX", "en") == "Responda STOP para darse de baja."
        assert settings.sms.footer("fr", "en") == "Reply STOP to opt out."
        assert settings.sms.stop_words["SERUM"] == ["serum"]
