"""No published secret guards a port beyond this machine (contract §14).

`config.example.toml` ships webhook secrets and API tokens that the README prints: fine for
`make run` on loopback, an open door anywhere else. The example's values are read when
`serve` starts, from the file next to the package or in the working directory, so the check
follows the example as it changes.
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from service.config.addresses import is_loopback
from service.config.clinics import ClinicSettings
from service.config.edge import public_host
from service.config.settings import FALLBACK_CONFIG, Settings

log = logging.getLogger("aftercare")


def example_places() -> list[Path]:
    """Where the example may be: the repository holding the package, the working directory."""
    return [
        Path(__file__).resolve().parents[2] / FALLBACK_CONFIG.name,
        Path.cwd() / FALLBACK_CONFIG.name,
    ]


def published_secrets(places: Iterable[Path]) -> set[str]:
    """Every webhook secret and API token the example files in `places` ship."""
    found: set[str] = set()
    for place in places:
        try:
            data = tomllib.loads(place.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            continue
        for clinic in _tables(data.get("clinics")):
            for key in ("webhook_secrets", "api_tokens"):
                found.update(v for v in clinic.get(key, []) if isinstance(v, str))
        privacy = data.get("privacy")
        keys = privacy.get("number_keys", []) if isinstance(privacy, dict) else []
        found.update(v for v in keys if isinstance(v, str))
    return found


def exposure_problems(
    settings: Settings, host: str, *, places: Iterable[Path] | None = None
) -> list[str]:
    """One line per webhook secret, API token, notification secret or number key the example
    ships, when `host` (the address bound) or `server.public_base_url` is not loopback: a
    reverse proxy in front of 127.0.0.1 is the usual production shape, and it publishes the
    service as surely as binding 0.0.0.0 does."""
    where = exposed_at(settings, host)
    if where is None:
        return []
    places = list(example_places() if places is None else places)
    published = published_secrets(places)
    if not published:
        log.debug(
            "no example secrets to compare with",
            extra={"looked_in": ", ".join(str(p) for p in places)},
        )
        return []
    return [
        f"clinics.{cid}.{path}: is the published example {kind}; set your own before "
        f"serving on {where}"
        for cid, clinic in settings.clinics.items()
        for path, kind, value in _guards(clinic)
        if value.get_secret_value() in published
    ] + [
        f"privacy.number_keys[{i}]: is the published example key; set your own before "
        f"serving on {where}"
        for i, key in enumerate(settings.privacy.number_keys)
        if key.get_secret_value() in published
    ]


def exposed_at(settings: Settings, host: str) -> str | None:
    """Where the service is reachable beyond this machine: the bound `host`, else the public
    URL; None when both are loopback."""
    if not is_loopback(host):
        return host
    url = settings.server.public_base_url
    return None if is_loopback(public_host(url)) else url


def _guards(clinic: ClinicSettings) -> Iterator[tuple[str, str, SecretStr]]:
    """The clinic's secrets and tokens by path: webhook secrets and API tokens, and the secrets
    that sign its notifications (a published one lets anyone forge them to its system)."""
    for key, kind in (("webhook_secrets", "secret"), ("api_tokens", "token")):
        for i, value in enumerate(getattr(clinic, key)):
            yield f"{key}[{i}]", kind, value
    if clinic.notifications is not None:
        for i, value in enumerate(clinic.notifications.secrets):
            yield f"notifications.secrets[{i}]", "secret", value


def _tables(value: Any) -> list[dict[str, Any]]:
    return [v for v in value.values() if isinstance(v, dict)] if isinstance(value, dict) else []
