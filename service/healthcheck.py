"""The container's health check: `python -m service.healthcheck` exits 0 when `/healthz` of the
service answers 200 on the configured port, else 1.

It reads the configuration the way `serve` does (`--config` aside: `$AFTERCARE_CONFIG`, then
./config.toml, then the example, with the environment's overrides), so a port changed in the
file or by `AFTERCARE_SERVER__PORT` is followed without editing the Dockerfile. Standard library
only, and no event loop: Docker runs it every few seconds.
"""

from __future__ import annotations

import os
import sys
import urllib.request
from collections.abc import Mapping

from service.config import load_settings, resolve_config_path
from service.errors import ConfigError

TIMEOUT = 2.0  # seconds; below the HEALTHCHECK's own --timeout
# A wildcard bind is reached on loopback (asyncio binds "::" IPv6-only, so "::" needs "::1").
WILDCARDS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


def healthz_url(host: str, port: int) -> str:
    """The URL of `/healthz` for a server bound to `host`:`port`."""
    target = WILDCARDS.get(host, host)
    if ":" in target:  # an IPv6 literal
        target = f"[{target}]"
    return f"http://{target}:{port}/healthz"


def check(url: str, *, timeout: float = TIMEOUT) -> str | None:
    """None when `url` answers 200 within `timeout`, else why not."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            status: int = answer.status
    except OSError as exc:  # URLError, HTTPError (a non-2xx answer), timeouts, refusals
        return f"{url}: {exc}"
    return None if status == 200 else f"{url}: HTTP {status}"


def main(environ: Mapping[str, str] = os.environ) -> int:
    """Exit status for the health check; the reason for a failure goes to stderr."""
    try:
        settings = load_settings(resolve_config_path(None, environ), environ).settings
    except ConfigError as exc:
        print(f"healthcheck: configuration: {'; '.join(exc.problems)}", file=sys.stderr)
        return 1
    failure = check(healthz_url(settings.server.host, settings.server.port))
    if failure:
        print(f"healthcheck: {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
