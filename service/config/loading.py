"""Loading the settings: the file, `AFTERCARE_…` environment overrides, validation.

`load_settings` either returns a complete `Settings` or raises `ConfigError` listing every
problem by its TOML path, or by its variable when the environment caused it, so a bad file
never starts half a service.

The sources are pydantic-settings' (`TomlConfigSettingsSource` for the file,
`EnvSettingsSource` for `AFTERCARE_<SECTION>__<KEY>`, service.config.environment), laid env over
file by `load_settings` and validated with `Settings.model_validate`; `Settings`'
`settings_customise_sources` keeps only what it is given. Letting `Settings()` gather them
would read `os.environ` only (check-config and the tests pass the environment in), add a
clinic `glow_downtown` beside the file's `glow-downtown` for `AFTERCARE_CLINICS__GLOW_DOWNTOWN__…`,
and give errors that cannot say which variable was wrong.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import TomlConfigSettingsSource

from service.config.checks import cross_check, partial_problems, punctuation_warnings
from service.config.environment import (
    FILE_VARIABLE,
    FROM_ENVIRONMENT,
    dotted,
    merged,
    read_environment,
)
from service.config.settings import FALLBACK_CONFIG, Settings
from service.errors import ConfigError


def resolve_config_path(explicit: str | None, environ: Mapping[str, str] = os.environ) -> Path:
    """`--config`, else `$AFTERCARE_CONFIG`, else ./config.toml, else ./config.example.toml."""
    if explicit:
        return Path(explicit)
    if environ.get(FILE_VARIABLE):
        return Path(environ[FILE_VARIABLE])
    local = Path("config.toml")
    return local if local.exists() else FALLBACK_CONFIG


def fell_back(explicit: str | None, environ: Mapping[str, str] = os.environ) -> bool:
    """Whether nothing named a file and ./config.toml is missing, so the example is read."""
    return not explicit and not environ.get(FILE_VARIABLE) and not Path("config.toml").exists()


@dataclass(frozen=True)
class Loaded:
    """Valid settings, and the `AFTERCARE_*` variables that were not configuration."""

    settings: Settings
    ignored: tuple[str, ...] = ()

    @property
    def warnings(self) -> list[str]:
        """One line per ignored variable (naming it, never its value), and one when erasure
        has no key to work with."""
        found = [
            f"{name}: not configuration (not AFTERCARE_<SECTION>__<KEY> of a known "
            "section); ignored"
            for name in self.ignored
        ]
        if not self.settings.privacy.number_keys:
            found.append(
                "privacy.number_keys: none configured; erasing a patient is refused until "
                "one is (docs/privacy.md)"
            )
        return found + punctuation_warnings(self.settings)


def load_settings(path: Path, environ: Mapping[str, str] = os.environ) -> Loaded:
    """Read, override and validate; raise ConfigError naming every problem by its TOML path,
    or by its variable when the environment caused it."""
    file_data = _read_file(path)
    env = read_environment(Settings, environ, file_data)
    data = merged(file_data, env.values)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        problems = [_describe(err) for err in exc.errors()] + partial_problems(data)
        raise ConfigError([*env.problems, *(env.blame(p, file_data) for p in problems)]) from None
    problems = [*env.problems, *(env.blame(p, file_data) for p in cross_check(settings))]
    if problems:
        raise ConfigError(problems)
    return Loaded(settings, env.ignored)


def _read_file(path: Path) -> dict[str, Any]:
    """The file's tables through pydantic-settings' TOML source; one problem if unreadable."""
    try:
        with path.open("rb"):
            pass  # the source skips a missing file silently; say why it cannot be read
        return TomlConfigSettingsSource(Settings, toml_file=path)()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text (byte {exc.start})"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None


def from_environment(problem: str) -> bool:
    """Whether `problem` names an environment variable rather than the file."""
    return problem.endswith(FROM_ENVIRONMENT)


def _describe(err: Mapping[str, Any]) -> str:
    message = str(err["msg"]).removeprefix("Value error, ")
    return f"{dotted(tuple(err['loc'])) or '(top level)'}: {message}"
