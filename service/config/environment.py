"""The environment's part of the configuration (contract §14): which `AFTERCARE_*` variables are
settings, what each sets, and which variable a problem comes from.

`AFTERCARE_<SECTION>__<KEY>` (any case) whose SECTION is a top-level section of the settings is
configuration: pydantic-settings' `EnvSettingsSource` reads it (`__` nests, JSON for lists and
tables), one variable at a time so that a value it cannot decode names its variable. Any other
`AFTERCARE_*` is not configuration: Kubernetes injects `AFTERCARE_PORT=tcp://…`,
`AFTERCARE_SERVICE_HOST`, `AFTERCARE_PORT_8080_TCP_ADDR`, … for a Service named `aftercare`,
so such names are reported (never their values) and left alone. `AFTERCARE_CONFIG` names the
file and is neither.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic_settings import BaseSettings, EnvSettingsSource

PREFIX = "AFTERCARE_"
DELIMITER = "__"
FILE_VARIABLE = "AFTERCARE_CONFIG"
FROM_ENVIRONMENT = " (from the environment)"

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Overrides:
    """What the environment sets, aligned to the file's keys, and what it holds besides."""

    values: dict[str, Any] = field(default_factory=dict)
    paths: dict[str, Loc] = field(default_factory=dict)  # variable → the setting it sets
    ignored: tuple[str, ...] = ()  # AFTERCARE_* names that are not configuration
    problems: tuple[str, ...] = ()  # values that could not be decoded

    def blame(self, problem: str, file_data: Mapping[str, Any]) -> str:
        """`problem` ("path: message") named by its variable when the environment caused it."""
        where, _, message = problem.partition(": ")
        name = self._variable_at(parse_loc(where), file_data)
        if name is None:
            return problem
        if message == "Extra inputs are not permitted":
            return f"{name}: unknown setting {where}{FROM_ENVIRONMENT}"
        return f"{name}: {where}: {message}{FROM_ENVIRONMENT}"

    def _variable_at(self, loc: Loc, file_data: Mapping[str, Any]) -> str | None:
        for name, path in self.paths.items():
            # It set this value, or one inside it (a section's key is never the whole section).
            if loc[: len(path)] == path or (len(loc) > 1 and path[: len(loc)] == loc):
                return name
        # A clinic or protocol only the environment made answers for what it lacks.
        made = _first_missing(loc, file_data)
        if made is None or len(made) < 2:
            return None
        return next((n for n, p in self.paths.items() if p[: len(made)] == made), None)


def read_environment(
    settings_cls: type[BaseSettings], environ: Mapping[str, str], file_data: Mapping[str, Any]
) -> Overrides:
    """Split `environ` by the rule above and read the settings it overrides."""
    sections = set(settings_cls.model_fields)
    source = EnvSettingsSource(settings_cls)  # prefix, `__`, case-insensitive: model_config
    values: dict[str, Any] = {}
    paths: dict[str, Loc] = {}
    ignored, problems = [], []
    for name in sorted(environ):
        if not name.upper().startswith(PREFIX) or name.upper() == FILE_VARIABLE:
            continue
        parts = name[len(PREFIX) :].lower().split(DELIMITER)
        if len(parts) < 2 or parts[0] not in sections:
            ignored.append(name)
            continue
        path = aligned(parts, file_data)
        paths[name] = path
        try:
            tree = source.explode_env_vars(
                parts[0], settings_cls.model_fields[parts[0]], {name.lower(): environ[name]}
            )
        except ValueError:
            problems.append(
                f"{name}: {dotted(path)}: not valid JSON; give lists and tables as "
                f'JSON, e.g. ["first", "second"]{FROM_ENVIRONMENT}'
            )
            continue
        _put(values, path, _leaf(tree, parts[1:]))
    return Overrides(values, paths, tuple(ignored), tuple(problems))


def merged(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `over` laid on top, tables merged key by key."""
    result = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = merged(result[key], value)
        else:
            result[key] = value
    return result


def aligned(parts: list[str], data: Any) -> tuple[str, ...]:
    """The path `parts` names in `data`, matching each key ignoring case and `-` vs `_`."""
    path = []
    for part in parts:
        key = _match_key(data, part) if isinstance(data, Mapping) else part
        path.append(key)
        data = data.get(key) if isinstance(data, Mapping) else None
    return tuple(path)


def parse_loc(where: str) -> Loc:
    """`protocols.mn.steps[0].after` as ("protocols", "mn", "steps", 0, "after")."""
    return tuple(
        int(index) if index else key for index, key in re.findall(r"\[(\d+)\]|([^.\[\]]+)", where)
    )


def dotted(path: Loc) -> str:
    """The path as a problem names it: `clinics.glow.webhook_secrets[1]`."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _match_key(node: Mapping[str, Any], part: str) -> str:
    """The existing key `part` names, ignoring case and `-` vs `_`; else `part` itself."""
    wanted = part.lower().replace("-", "_")
    return next((key for key in node if key.lower().replace("-", "_") == wanted), part)


def _leaf(tree: Any, parts: list[str]) -> Any:
    for part in parts:
        tree = tree[part]
    return tree


def _put(values: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = values
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[path[-1]] = value


def _first_missing(loc: Loc, data: Any) -> Loc | None:
    """The shortest start of `loc` that the file does not have, if any."""
    for i, part in enumerate(loc):
        if not isinstance(data, Mapping):
            return None
        if part not in data:
            return loc[: i + 1]
        data = data[part]
    return None
