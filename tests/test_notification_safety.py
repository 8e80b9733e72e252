"""Contract §14, "Notifications": each notification is signed with every one of the clinic's
secrets, and an endpoint on a private or link-local network is refused unless the clinic's
table allows it (check-config for literal addresses, each attempt for names).

The real app (`create_app`) on a real SQLite file; the clinic's endpoint is a fake that verifies
with standardwebhooks knowing one secret only; names are resolved by an injected resolver, so no
test depends on the machine's DNS or /etc/hosts.
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from pytest_aiohttp import AiohttpServer
from sqlmodel import Session

from service.config import is_private, literal
from service.storage.outbox import record
from service.web.app import create_app
from service.web.keys import SETTINGS, TRANSACTIONS
from tests.fakes.clinic import PATH, FakeClinic, serve_clinic
from tests.fixtures.cli import _isolated, run
from tests.helpers.client import bearer
from tests.helpers.toml import to_toml
from tests.processes import until_async
from tests.support import OLD_SECRET, SECRET, TOKEN, FakeClock, config_data, glow_in_utc
from tests.support import make_settings as settings_for

__all__ = ["_isolated"]  # autouse: each test in an empty directory

BASE = "/v1/clinics/glow/notifications"


class MapResolver(AbstractResolver):
    """Resolves the names it was given to their addresses; records each question."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        address = self.names[host]
        kind = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [
            ResolveResult(hostname=host, host=address, port=port, family=kind, proto=0, flags=0)
        ]

    async def close(self) -> None:
        pass


async def notified(
    aiohttp_client: Any, db: Path, target: dict[str, Any], *, resolver: AbstractResolver | None
) -> tuple[Any, str]:
    """The app with clinic `glow` notified at `target`; one notification written; its id."""
    settings = settings_for(
        f"sqlite+aiosqlite:///{db}",
        clinics={"glow": glow_in_utc(notifications=target)},
        notifications={"timeout": "1s", "give_up_after": "1m"},
    )
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    client = await aiohttp_client(create_app(settings, clock=clock, resolver=resolver))

    def write(s: Session) -> str | None:
        return record(
            s.connection(),
            client.app[SETTINGS],
            clinic_id="glow",
            type_="message.failed",
            data={"message": {"id": "msg_1", "status": "failed"}},
            now=clock.now(),
        )

    nid = await client.app[TRANSACTIONS].write(write)
    assert nid is not None
    return client, nid


async def first_attempt(client: Any, nid: str) -> dict[str, Any]:
    """The notification once its first attempt is recorded."""
    found: dict[str, dict[str, Any]] = {}

    async def attempted() -> bool:
        answer = await client.get(BASE, headers=bearer(TOKEN))
        [found["n"]] = [n for n in (await answer.json())["notifications"] if n["id"] == nid]
        return bool(found["n"]["attempts"])

    await until_async(attempted, timeout=10)
    return found["n"]


class TestSignedWithEverySecret:
    @pytest.mark.parametrize("known", [0, 1], ids=["first-secret", "second-secret"])
    async def test_a_receiver_knowing_either_secret_verifies_it(
        self, known: int, aiohttp_client: Any, aiohttp_server: AiohttpServer, db_path: Path
    ) -> None:
        """secrets = [old, new]: a receiver that knows only one of them verifies the
        notification with standardwebhooks, whichever one it is."""
        secrets = [OLD_SECRET, SECRET]
        clinic = FakeClinic(secret=secrets[known])
        url = await serve_clinic(aiohttp_server, clinic)
        client, nid = await notified(
            aiohttp_client, db_path, {"url": url, "secrets": secrets}, resolver=None
        )
        assert (await first_attempt(client, nid))["state"] == "delivered"
        assert [(r.webhook_id, r.verified) for r in clinic.received] == [(nid, True)]


class TestPrivateNetworks:
    @pytest.mark.parametrize(
        "address",
        [
            "10.0.0.5",
            "169.254.169.254",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.5",
            "::ffff:169.254.169.254",
        ],
    )
    def test_private_and_link_local_addresses_are_private(self, address: str) -> None:
        parsed = literal(address)
        assert parsed is not None and is_private(parsed)

    @pytest.mark.parametrize(
        "address", ["127.0.0.1", "::1", "::ffff:127.0.0.1", "8.8.8.8", "172.32.0.1", "2001:db8::1"]
    )
    def test_loopback_and_public_addresses_are_not(self, address: str) -> None:
        parsed = literal(address)
        assert parsed is not None and not is_private(parsed)

    def test_check_config_refuses_literal_private_addresses_by_path(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """https://169.254.169.254/ and https://10.0.0.5/ are refused, each named by its TOML
        path; allow_private_network = true lets them through."""
        config = tmp_path / "config.toml"
        config.write_text(to_toml(self._two_clinics(tmp_path, allow=False)), encoding="utf-8")
        status, out, err = run(capsys, "--config", str(config), "check-config")
        assert status == 1
        for clinic, address in (("glow", "169.254.169.254"), ("other", "10.0.0.5")):
            assert (
                f"clinics.{clinic}.notifications.url: {address} is a private or link-local address"
            ) in out + err
        config.write_text(to_toml(self._two_clinics(tmp_path, allow=True)), encoding="utf-8")
        status, out, err = run(capsys, "--config", str(config), "check-config")
        assert status == 0, out + err

    @staticmethod
    def _two_clinics(tmp_path: Path, *, allow: bool) -> dict[str, Any]:
        data = config_data(tmp_path / "aftercare.db")
        urls = {"glow": "https://169.254.169.254/latest", "other": "https://10.0.0.5/hooks"}
        for clinic, url in urls.items():
            data["clinics"][clinic]["notifications"] = {
                "url": url,
                "secrets": [SECRET],
                "allow_private_network": allow,
            }
        return data

    async def test_a_name_resolving_to_a_private_address_is_a_failed_attempt(
        self, aiohttp_client: Any, db_path: Path
    ) -> None:
        """hooks.clinic.test resolves to 10.0.0.5: the attempt fails at once with an error
        that says so, and is retried like any other; no connection was tried (a connection to
        10.0.0.5 would have met the 1 s timeout or a network error instead)."""
        resolver = MapResolver({"hooks.clinic.test": "10.0.0.5"})
        target = {"url": f"https://hooks.clinic.test{PATH}", "secrets": [SECRET]}
        client, nid = await notified(aiohttp_client, db_path, target, resolver=resolver)
        found = await first_attempt(client, nid)
        assert found["state"] == "pending" and found["due_at"] is not None
        [attempt] = found["attempts"]
        assert attempt["http_status"] is None
        assert attempt["error"] == (
            "refused: hooks.clinic.test resolves to 10.0.0.5, a private or link-local address "
            "(allow_private_network is off); no request was made"
        )
        assert resolver.asked == ["hooks.clinic.test"]

    async def test_a_name_resolving_to_a_private_address_is_tried_when_allowed(
        self, aiohttp_client: Any, db_path: Path
    ) -> None:
        """With allow_private_network = true the same name is resolved and a connection to
        10.0.0.5 is tried: the attempt fails as the network makes it fail (nothing listens
        there in a test), not as refused."""
        resolver = MapResolver({"hooks.clinic.test": "10.0.0.5"})
        target = {
            "url": f"https://hooks.clinic.test{PATH}",
            "secrets": [SECRET],
            "allow_private_network": True,
        }
        client, nid = await notified(aiohttp_client, db_path, target, resolver=resolver)
        [attempt] = (await first_attempt(client, nid))["attempts"]
        assert attempt["error"].startswith(("timeout", "connection failed")), attempt
        assert resolver.asked == ["hooks.clinic.test"]
