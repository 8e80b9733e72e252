"""The configuration reference, written from the settings models at every docs build.

An mkdocs hook (`hooks:` in mkdocs.yml): `on_files` adds the page `reference.md`, generated
by walking `service.config.Settings` and every section model it holds (field names, TOML
paths, types, defaults, limits, the environment variable, and the field's description or the
comment beside it in the source). Nothing is written into docs/: the page cannot drift from
the code because it is made from it. `tests/test_docs.py` checks that it names every field.

Run it alone to print the page: `python docs/hooks/config_reference.py`.
"""

from __future__ import annotations

import inspect
import io
import re
import sys
import tokenize
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import time, timedelta
from enum import Enum
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PAGE = "reference.md"
PREFIX = "AFTERCARE_"

# What a key means, for the keys whose model has neither a description nor a comment and the
# example no comment. Keyed by TOML path; tests/test_docs.py fails on a path that is not a
# field, so an entry cannot outlive its key. A `Field(description=...)` in the model wins.
DESCRIPTIONS = {
    "server.host": (
        "Address `serve` listens on; anything but loopback refuses the example's secrets."
    ),
    "server.port": "Port `serve` listens on (also read by the container's health check).",
    "server.max_body_bytes": "Largest request body accepted; larger is a 413.",
    "server.max_connections": "Connections open at once; one beyond is closed unanswered.",
    "database.migrate_on_start": "Apply migrations when `serve` starts (safe on many replicas).",
    "sms.reply_to_keywords": "Answer STOP, START and HELP with TwiML (`<Response/>` when false).",
    "twilio.api_base_url": "Twilio's API (the tests point it at a fake).",
    "twilio.messaging_service_sid": (
        "Send through this messaging service unless a clinic names its own."
    ),
    "twilio.delete_media": "Delete a photo from Twilio once it is stored here.",
    "scheduler.default_expires_after": "How late a step without `expires_after` may still go out.",
    "scheduler.retry_initial_delay": "First wait after a 429 or refused connection; it doubles.",
    "scheduler.retry_max_delay": "Longest wait between two retries of a send.",
    "scheduler.claim_lease": "How long a claim is held before another replica may reconcile it; "
    "at least twice `twilio.request_timeout`.",
    "scheduler.poll_interval": "How often the timers are refilled from the rows.",
    "notifications.retry_max_delay": "Longest wait between two attempts.",
    "clinics.<id>.on_call_numbers": "E.164 numbers texted when a reply opens an escalation.",
    "clinics.<id>.escalation_reminder": "When the on-call numbers are texted again if nobody "
    "acknowledged.",
    "clinics.<id>.name": "The clinic's name, `{clinic_name}` in texts.",
    "clinics.<id>.timezone": "IANA zone for patients who have none.",
    "clinics.<id>.locale": "Language of the clinic's plain-string texts, and the fallback.",
    "clinics.<id>.from_number": (
        "E.164 number the clinic's texts come from (or a messaging service)."
    ),
    "clinics.<id>.messaging_service_sid": "Twilio messaging service the clinic's texts go through.",
    "clinics.<id>.webhook_secrets": "`whsec_` secrets that may sign the clinic's events; "
    "several to rotate.",
    "clinics.<id>.api_tokens": "Bearer tokens of the read API; each belongs to one clinic.",
    "clinics.<id>.quiet_hours": "Local hours no message is sent in; 21:00-08:00 when absent.",
    "clinics.<id>.help_text": "The answer to HELP.",
    "clinics.<id>.quiet_hours.start": "Quiet hours begin (patient's local time).",
    "clinics.<id>.quiet_hours.end": "Quiet hours end; equal to `start` turns them off.",
    "clinics.<id>.notifications.url": "The clinic system's endpoint: https, or http to loopback.",
    "clinics.<id>.notifications.events": "Types the clinic is sent.",
    "protocols.<key>.title": "The protocol's name.",
    "protocols.<key>.default_serum": "`{serum}` when the event names none.",
    "protocols.<key>.steps": "The protocol's steps (at least one).",
    "protocols.<key>.steps[].fallback_answer": (
        "A check-in's answer to a reply that matches no key."
    ),
    "protocols.<key>.steps[].replies": "A check-in's reply keys (`1`, `2`, …) and what each means.",
    "protocols.<key>.steps[].key": "The step's name, unique in the protocol.",
    "protocols.<key>.steps[].kind": "What the message is; `STOP <WORD>` stops kinds.",
    "protocols.<key>.steps[].text": "The text, or a table of locales; placeholders in braces.",
    "protocols.<key>.steps[].after": "Once, this long after the treatment (or first of a series).",
    "protocols.<key>.steps[].every": "With `after` and `count`: the gap between messages.",
    "protocols.<key>.steps[].count": "With `after` and `every`: how many.",
    "protocols.<key>.steps[].days": (
        'Local days after the treatment (`"1-14"` or `[1, 3]`), with `at`.'
    ),
    "protocols.<key>.steps[].at": "Local clock times on each of `days` (or `days_before`).",
    "protocols.<key>.steps[].only_if": "Keep the step only for sessions before the last.",
    "protocols.<key>.steps[].expires_after": "How late the message may still go out.",
    "protocols.<key>.steps[].replies.<key>.level": "How urgent a reply of this key is.",
    "protocols.<key>.steps[].replies.<key>.answer": (
        "The text that answers it, or a table of locales."
    ),
}


@dataclass(frozen=True)
class Section:
    """One table of the TOML file: its path (`clinics.<id>.quiet_hours`) and its model."""

    path: str
    model: type[Any]
    env: str | None  # the environment name's stem, None where a table cannot be addressed


@dataclass(frozen=True)
class Row:
    name: str
    toml: str
    type: str
    default: str
    limits: str
    env: str | None
    about: str


def _settings() -> type[Any]:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from service.config import Settings

    return Settings


def _is_model(tp: Any) -> bool:
    from pydantic import BaseModel

    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _args(tp: Any) -> tuple[Any, ...]:
    return tuple(a for a in typing.get_args(tp) if a is not type(None))


def _nested(annotation: Any) -> Iterator[tuple[str, type[Any]]]:
    """The models a field holds, with the suffix their path takes: a table (`''`), a table of
    tables by key (`.<key>`) or an array of tables (`[]`)."""
    origin = typing.get_origin(annotation)
    if _is_model(annotation):
        yield "", annotation
    elif origin in (typing.Union, types.UnionType):
        for arg in _args(annotation):
            yield from _nested(arg)
    elif origin is dict:
        for suffix, model in _nested(typing.get_args(annotation)[1]):
            yield ".<key>" + suffix, model
    elif origin is list:
        for suffix, model in _nested(typing.get_args(annotation)[0]):
            yield "[]" + suffix, model


def sections() -> list[Section]:
    """Every table of the configuration, depth first from `Settings`' own fields."""
    settings = _settings()
    out: list[Section] = []

    def walk(path: str, model: type[Any], env: str | None) -> None:
        out.append(Section(path, model, env))
        for name, field in model.model_fields.items():
            for suffix, inner in _nested(field.annotation):
                key = {"clinics": "<id>", "protocols": "<key>"}.get(name, "<key>")
                sub = f"{path}.{name}" if path else name
                sub += suffix.replace("<key>", key)
                inner_env = None
                if env is not None and "[]" not in suffix:
                    stem = f"{env}__{name.upper()}" if env else name.upper()
                    inner_env = stem + ("__" + key.upper() if suffix else "")
                walk(sub, inner, inner_env)

    walk("", settings, "")
    return out


def _type(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is type(None):
        return "none"
    if origin is typing.Literal:
        return " \\| ".join(f'`"{a}"`' if isinstance(a, str) else f"`{a}`" for a in tp.__args__)
    if origin in (typing.Union, types.UnionType):
        parts = [_type(a) for a in typing.get_args(tp)]
        return " or ".join(parts)
    if origin is list:
        return f"list of {_type(typing.get_args(tp)[0])}"
    if origin is dict:
        return f"table of {_type(typing.get_args(tp)[1])}"
    if origin is typing.Annotated:
        return _type(typing.get_args(tp)[0])
    if _is_model(tp):
        return "table"
    return _plain(tp)


def _plain(tp: Any) -> str:
    named = {
        str: "string",
        int: "integer",
        float: "number",
        bool: "boolean",
        timedelta: "duration",
        time: "clock time",
    }
    if tp in named:
        return named[tp]
    if getattr(tp, "__name__", "") == "SecretStr":
        return "secret string"
    if isinstance(tp, type) and issubclass(tp, Enum):
        return " \\| ".join(f"`{m.value}`" for m in tp)
    return f"`{getattr(tp, '__name__', str(tp))}`"


def _duration(td: timedelta) -> str:
    rest = int(td.total_seconds())
    if rest == 0:
        return "0s"
    parts = []
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def _value(value: Any) -> str:
    from pydantic import BaseModel, SecretStr

    if isinstance(value, timedelta):
        return f"`{_duration(value)}`"
    if isinstance(value, time):
        return f"`{value:%H:%M}`"
    if isinstance(value, SecretStr):
        return '`""`' if not value.get_secret_value() else "(hidden)"
    if isinstance(value, BaseModel):
        return "(its fields' defaults)"
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if value is None:
        return "none"
    if isinstance(value, dict) and not value:
        return "`{}`"
    text = repr(value).replace("'", '"').replace("|", "\\|")
    return f"`{text}`"


def _default(field: Any) -> str:
    from pydantic_core import PydanticUndefined

    if field.default_factory is not None:
        try:
            return _value(field.default_factory())
        except TypeError:  # a factory that takes the validated data
            return "(computed)"
    if field.default is PydanticUndefined:
        return "**required**"
    return _value(field.default)


def _limits(field: Any) -> str:
    words = {
        "ge": "≥",
        "gt": ">",
        "le": "≤",
        "lt": "<",
        "min_length": "at least",
        "max_length": "at most",
    }
    out = []
    for item in field.metadata:
        for attr, word in words.items():
            bound = getattr(item, attr, None)
            if bound is not None:
                shown = _duration(bound) if isinstance(bound, timedelta) else f"{bound:,}"
                unit = " items" if attr.endswith("length") else ""
                out.append(f"{word} {shown}{unit}")
        pattern = getattr(item, "pattern", None)
        if pattern:
            out.append(f"matches `{pattern}`")
    return ", ".join(out)


def _comments(cls: type[Any]) -> dict[str, str]:
    """The comment beside each field declared in `cls`'s own source, or the block above it."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    lines = source.splitlines()
    comments: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
    own = set(inspect.get_annotations(cls))
    out: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        name = line.strip().split(":", 1)[0]
        if not name.isidentifier() or name not in own or not line.startswith("    " + name):
            continue
        above = []
        n = number - 1
        while n in comments and lines[n - 1].strip().startswith("#"):
            above.insert(0, comments[n])
            n -= 1
        text = " ".join(above)
        if number in comments and not line.strip().startswith("#"):
            text = (text + " " + comments[number]).strip()
        out[name] = text
    return out


def _about(model: type[Any], name: str, field: Any) -> str:
    if field.description:
        return str(field.description)
    for cls in model.__mro__:
        if name in inspect.get_annotations(cls):
            return _comments(cls).get(name, "")
    return ""


def _generic(parts: list[str]) -> str:
    """An example's path in the reference's terms: `clinics.glow-downtown` → `clinics.<id>`."""
    if len(parts) > 1 and parts[0] in ("clinics", "protocols"):
        parts = [parts[0], "<id>" if parts[0] == "clinics" else "<key>", *parts[2:]]
    return ".".join(parts)


def _comment_of(line: str) -> tuple[str, str]:
    """`line` split at its comment: a `#` outside a string."""
    quoted = False
    for i, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char == "#" and not quoted:
            return line[:i], line[i + 1 :].strip()
    return line, ""


def example_comments(path: Path = ROOT / "config.example.toml") -> dict[str, str]:
    """The comments of the example file by key (`scheduler.horizon`, `clinics.<id>.name`): the
    one beside a key, the lines under it that go on with it, or the block just above it; and a
    table's own, beside its header."""
    out: dict[str, str] = {}
    table = ""
    above: list[str] = []
    last = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        code, comment = _comment_of(raw)
        stripped = code.strip()
        if not stripped:
            if comment and raw.startswith(" ") and last:  # a comment going on beside a key
                out[last] = (out.get(last, "") + " " + comment).strip()
            elif comment:
                above.append(comment)
            else:
                above, last = [], ""
            continue
        if stripped.startswith("["):
            name = stripped.strip("[]").strip()
            table = _generic(name.split(".")) + ("[]" if stripped.startswith("[[") else "")
            if comment:
                out[table] = comment
            above, last = [], ""
            continue
        key = stripped.split("=", 1)[0].strip()
        last = f"{table}.{key}" if table else key
        text = " ".join([*above, comment]).strip()
        if text and last not in out:
            out[last] = text
        elif last in out:
            last = ""  # described once already (the first clinic's, the first step's)
        above = []
    return out


def rows(section: Section, example: dict[str, str] | None = None) -> list[Row]:
    example = example_comments() if example is None else example
    out = []
    for name, field in section.model.model_fields.items():
        toml = f"{section.path}.{name}" if section.path else name
        env = None
        if section.env is not None:
            env = PREFIX + (f"{section.env}__" if section.env else "") + name.upper()
        about = _about(section.model, name, field) or example.get(toml, "")
        about = about or DESCRIPTIONS.get(toml, "")
        about = _DOC_LINK.sub(r"[\1](\1)", about).replace("|", "\\|")
        out.append(
            Row(
                name=name,
                toml=toml,
                type=_type(field.annotation),
                default=_default(field),
                limits=_limits(field),
                env=env,
                about=about,
            )
        )
    return out


_DOC_LINK = re.compile(r"docs/([a-z0-9-]+\.md)")


def _doc(section: Section, example: dict[str, str]) -> str:
    doc = inspect.cleandoc(section.model.__dict__.get("__doc__") or "")
    doc = " ".join(doc.split("\n\n")[0].split()) or example.get(section.path, "")
    return _DOC_LINK.sub(r"[\1](\1)", doc)


def _holds_a_table(model: type[Any], name: str) -> bool:
    return any(True for _ in _nested(model.model_fields[name].annotation))


def _header(path: str) -> str:
    """A table's header as a TOML file writes it: `[[protocols.<key>.steps]]` for an array."""
    if path.endswith("[]"):
        return f"[[{path[:-2]}]]"
    return f"[{path.replace('[]', '')}]"


def render() -> str:
    """The reference page, as markdown."""
    out = [
        "# Configuration reference",
        "",
        "Generated from the settings models (`service.config`) at every build of these docs,",
        "so it lists exactly what the code reads. How the file is found, how the environment",
        "overrides it and the rules `check-config` adds are in",
        "[Configuration](configuration.md); the example file, `config.example.toml`, sets",
        "every section.",
        "",
        "Durations are written `90s`, `15m`, `2h`, `3d`, `4w` or combined (`1d12h`); clock",
        "times `HH:MM` in the patient's local time. A table of tables (`<id>`, `<key>`) is keyed",
        "by your own names; `[]` is an array of tables (`[[protocols.<key>.steps]]`). In an",
        "environment name, `<ID>` is the id with `_` for `-` (`glow-downtown`: `GLOW_DOWNTOWN`);",
        "lists and tables are given whole, as JSON.",
        "",
    ]
    example = example_comments()
    for section in sections():
        listed = rows(section, example)
        if not section.path:
            # The top level holds the sections below; a plain key there gets a table of its own.
            listed = [r for r in listed if not _holds_a_table(section.model, r.name)]
            if not listed:
                continue
        out += [f"## `{_header(section.path)}`" if section.path else "## Top level", ""]
        doc = _doc(section, example)
        if doc:
            out += [doc, ""]
        out += [
            "| Key | Type | Default | Limits | Description |",
            "|---|---|---|---|---|",
        ]
        for row in listed:
            key = f"`{row.name}`"
            if row.env:
                key += f"<br><small>`{row.env}`</small>"
            out.append(f"| {key} | {row.type} | {row.default} | {row.limits} | {row.about} |")
        out.append("")
    return "\n".join(out)


def on_files(files: Any, config: Any) -> Any:
    """mkdocs: add the generated page to the site."""
    from mkdocs.structure.files import File

    files.append(File.generated(config, PAGE, content=render()))
    return files


if __name__ == "__main__":
    print(render())
