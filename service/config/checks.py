"""Problems no single field shows: across sections (senders, tokens, leases) and within a
protocol (duplicate keys, timing forms, templates and locales), reported by TOML path."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pydantic import ValidationError
from sqlalchemy import make_url

from service.config.protocols import StepSettings
from service.config.settings import Settings
from service.planning import triage
from service.planning.gsm7 import ucs2_only_for_punctuation
from service.planning.protocols import timing_problems
from service.planning.templates import template_problems


def cross_check(settings: Settings) -> list[str]:
    """Problems that span sections: senders, templates, locales, timing forms."""
    problems = _sender_problems(settings) + _token_problems(settings) + _lease_problems(settings)
    problems += _worker_problems(settings)
    locales = {c.locale for c in settings.clinics.values()}
    for key, protocol in settings.protocols.items():
        problems += _protocol_problems(key, protocol.steps, locales)
    return problems


def _lease_problems(settings: Settings) -> list[str]:
    """A lease shorter than two requests lets a claim be reconciled while its send, held one
    request timeout, is still on its way to Twilio: the message would go out twice."""
    lease, timeout = settings.scheduler.claim_lease, settings.twilio.request_timeout
    if lease >= 2 * timeout:
        return []
    return [
        f"scheduler.claim_lease: {lease.total_seconds():g}s is shorter than twice "
        f"twilio.request_timeout ({timeout.total_seconds():g}s); use at least "
        f"{2 * timeout.total_seconds():g}s"
    ]


def _worker_problems(settings: Settings) -> list[str]:
    """Workers share the database: an in-memory SQLite database is one process's alone."""
    url = make_url(settings.database.url)
    in_memory = url.drivername.startswith("sqlite") and url.database in (None, "", ":memory:")
    if settings.server.worker_count() == 1 or not in_memory:
        return []
    return [
        "server.workers: an in-memory SQLite database cannot be shared by several workers; "
        "use a file (sqlite+aiosqlite:///PATH) or workers = 1"
    ]


def _token_problems(settings: Settings) -> list[str]:
    """A token must name one clinic, or the read API could not tell whose it is."""
    owners: dict[str, str] = {}
    problems = []
    for cid, clinic in settings.clinics.items():
        for i, token in enumerate(clinic.api_tokens):
            value = token.get_secret_value()
            if value in owners and owners[value] != cid:
                problems.append(
                    f"clinics.{cid}.api_tokens[{i}]: also a token of clinic "
                    f"{owners[value]!r}; each token must belong to one clinic"
                )
            owners.setdefault(value, cid)
    return problems


def _sender_problems(settings: Settings) -> list[str]:
    if settings.sms.backend != "twilio":
        return []
    problems = []
    if not settings.twilio.account_sid:
        problems.append("twilio.account_sid: required when sms.backend is 'twilio'")
    if not settings.twilio.auth_token.get_secret_value():
        problems.append("twilio.auth_token: required when sms.backend is 'twilio'")
    shared_service = bool(settings.twilio.messaging_service_sid)
    for cid, clinic in settings.clinics.items():
        if not (clinic.from_number or clinic.messaging_service_sid or shared_service):
            problems.append(f"clinics.{cid}.from_number: set from_number or messaging_service_sid")
    return problems


def partial_problems(data: Mapping[str, Any]) -> list[str]:
    """The protocol problems of every step that did validate, so one run reports them all."""
    clinics, protocols = data.get("clinics"), data.get("protocols")
    if not isinstance(clinics, dict) or not isinstance(protocols, dict):
        return []
    raw = [c.get("locale", "en") for c in clinics.values() if isinstance(c, dict)]
    locales = {locale for locale in raw if isinstance(locale, str)}
    problems = []
    for key, protocol in protocols.items():
        steps = protocol.get("steps") if isinstance(protocol, dict) else None
        if isinstance(steps, list):
            valid = [_valid_step(step) for step in steps]
            problems += _protocol_problems(key, valid, locales)
    return problems


def _valid_step(raw: Any) -> StepSettings | None:
    try:
        return StepSettings.model_validate(raw)
    except ValidationError:
        return None  # already reported with its path


def _protocol_problems(
    key: str, steps: Sequence[StepSettings | None], locales: set[str]
) -> list[str]:
    problems = []
    seen: set[str] = set()
    for i, step in enumerate(steps):
        if step is None:
            continue
        path = f"protocols.{key}.steps[{i}]"
        if step.key in seen:
            problems.append(f"{path}.key: duplicate step key {step.key!r}")
        seen.add(step.key)
        problems += [f"{path}: {p}" for p in timing_problems(step.step("en"))]
        problems += _text_problems(f"{path}.text", step.text, locales)
        problems += _reply_problems(path, step, locales)
    return problems


def _reply_problems(path: str, step: StepSettings, locales: set[str]) -> list[str]:
    """A check-in's answers and fallback, checked like its text (contract §10)."""
    problems = []
    for key, reply in step.replies.items():
        problems += _text_problems(f"{path}.replies.{key}.answer", reply.answer, locales)
    if step.fallback_answer is not None:
        problems += _text_problems(f"{path}.fallback_answer", step.fallback_answer, locales)
    for key in step.replies:
        if not triage.normal(key):
            problems.append(f"{path}.replies: the key {key!r} has no letter or digit")
    return problems


def _text_problems(path: str, text: str | dict[str, str], locales: set[str]) -> list[str]:
    if isinstance(text, str):
        return [f"{path}: {p}" for p in template_problems(text)]
    problems = [f"{path}.{loc}: {p}" for loc, t in text.items() for p in template_problems(t)]
    for locale in sorted(locales):
        if not _has_locale(text, locale):
            problems.append(f"{path}: no text for clinic locale {locale!r}")
    return problems


def _has_locale(text: Mapping[str, str], locale: str) -> bool:
    wanted = {locale.lower().replace("_", "-"), locale.lower().split("-")[0].split("_")[0]}
    return any(k.lower().replace("_", "-") in wanted for k in text)


def punctuation_warnings(settings: Settings) -> list[str]:
    """One line per step text (any locale) that is UCS-2 only because of typographic
    punctuation (contract §18), named by its TOML path: each costs 70 characters a segment
    instead of 160 unless `sms.gsm7 = "prefer"` replaces it when sent."""
    fate = (
        'replaced when sent (sms.gsm7 = "prefer")'
        if settings.sms.gsm7 == "prefer"
        else 'sent as written (sms.gsm7 = "off")'
    )
    return [
        f"{path}: UCS-2 only because of typographic quotes, dashes or ellipses; {fate}"
        for path, text in _step_texts(settings)
        if ucs2_only_for_punctuation(text)
    ]


def _step_texts(settings: Settings) -> Iterator[tuple[str, str]]:
    """Every step text of every protocol, in every locale, with its TOML path."""
    for key, protocol in settings.protocols.items():
        for i, step in enumerate(protocol.steps):
            path = f"protocols.{key}.steps[{i}].text"
            if isinstance(step.text, str):
                yield path, step.text
            else:
                yield from ((f"{path}.{loc}", text) for loc, text in step.text.items())
