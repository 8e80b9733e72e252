"""Names resolved for notifications, private networks refused (contract §14, "Notifications").

A clinic's endpoint named by a host name is resolved at each attempt (aiohttp's connector asks
its resolver; its DNS cache keeps an answer 10 s). `GuardedResolver` wraps the resolver the
connector would use and refuses the whole answer when any address in it is private or
link-local (`addresses.is_private`): the attempt fails before any connection is opened. The
connector connects to the addresses the resolver returned, the very ones checked, so a name
that answers a public address to the check and a private one to the connection (DNS
rebinding) gains nothing: there is no second lookup. This is aiohttp's public API
(`aiohttp.abc.AbstractResolver`, `TCPConnector(resolver=...)`). A literal address in the URL
never reaches a resolver; `check-config` refuses a private one.
"""

from __future__ import annotations

import ipaddress
import socket

from aiohttp.abc import AbstractResolver, ResolveResult

from service.config import is_private


class PrivateAddressError(OSError):
    """A name resolved to a private or link-local address and the clinic does not allow it."""


class GuardedResolver(AbstractResolver):
    """`base`'s answers, refused when any address is private or link-local."""

    def __init__(self, base: AbstractResolver) -> None:
        self.base = base

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Resolve `host` with the base resolver; PrivateAddressError if any answer is private
        or link-local (or not an address at all)."""
        answers = await self.base.resolve(host, port, family)
        for answer in answers:
            if _refused(answer["host"]):
                raise PrivateAddressError(
                    f"{host} resolves to {answer['host']}, a private or link-local address "
                    "(allow_private_network is off); no request was made"
                )
        return answers

    async def close(self) -> None:
        """Close the base resolver."""
        await self.base.close()


def _refused(host: str) -> bool:
    try:
        return is_private(ipaddress.ip_address(host))
    except ValueError:  # not an address: nothing to check it against, so nothing to trust
        return True
