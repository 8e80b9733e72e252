"""A configuration as a dict, written as the TOML file a service under test reads.

Sections become `[tables]` (nested ones `[a.b]`), lists of tables `[[arrays.of.tables]]`, and
everything else key = value, tables inside lists inline. Strings are JSON strings (valid TOML
basic strings); `datetime.time` values are TOML local times.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import date, time
from pathlib import Path
from typing import Any

BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def to_toml(data: Mapping[str, Any]) -> str:
    """`data` as a TOML document."""
    return "\n".join(_table((), data)).lstrip("\n") + "\n"


def write_toml(path: Path, data: Mapping[str, Any]) -> Path:
    """Write `data` as TOML (UTF-8) to `path`; the path."""
    path.write_text(to_toml(data), encoding="utf-8")
    return path


def value(item: Any) -> str:
    """One TOML value, written inline."""
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, int | float):
        return repr(item)
    if isinstance(item, str):
        return json.dumps(item, ensure_ascii=False)
    if isinstance(item, list | tuple):
        return "[" + ", ".join(value(v) for v in item) + "]"
    if isinstance(item, Mapping):
        return "{ " + ", ".join(f"{key(k)} = {value(v)}" for k, v in item.items()) + " }"
    if isinstance(item, time | date):  # a local time such as 08:30, a date, a datetime
        return item.isoformat()
    raise TypeError(f"cannot write {item!r} as TOML")


def key(name: str) -> str:
    """A key, bare when TOML allows it, quoted otherwise."""
    return name if BARE_KEY.match(name) else json.dumps(name, ensure_ascii=False)


def _is_tables(item: Any) -> bool:
    return isinstance(item, list) and bool(item) and all(isinstance(v, Mapping) for v in item)


def _table(path: tuple[str, ...], table: Mapping[str, Any], *, array: bool = False) -> list[str]:
    """The lines of one table: its header, its own keys, then its sub-tables."""
    subtables = {k: v for k, v in table.items() if isinstance(v, Mapping) or _is_tables(v)}
    own = [f"{key(k)} = {value(v)}" for k, v in table.items() if k not in subtables]
    name = ".".join(key(p) for p in path)
    lines: list[str] = []
    if array:
        lines = ["", f"[[{name}]]"]
    elif path and (own or not subtables):
        lines = ["", f"[{name}]"]
    lines += own
    for k, sub in subtables.items():
        if isinstance(sub, Mapping):
            lines += _table((*path, k), sub)
        else:
            for item in sub:
                lines += _table((*path, k), item, array=True)
    return lines
