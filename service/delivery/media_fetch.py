"""One photo's download from Twilio (contract §17): the account's credentials only to
`twilio.api_base_url`'s host, Twilio's redirect followed by hand (at most twice, without the
credentials) only to a host of `twilio.media_hosts`, a timeout on the whole, and the size cap
enforced while reading (a `Content-Length` is not trusted to be there, nor true)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import aiohttp
from yarl import URL

MAX_BYTES = 5 * 1024 * 1024  # Twilio's own cap for a message's media
MAX_REDIRECTS = 2
CHUNK = 64 * 1024
REDIRECTS = (301, 302, 303, 307, 308)


@dataclass(frozen=True)
class Fetched:
    """What a download came to: `data`, or a `failure` (a reason) that is `final` or not."""

    data: bytes | None = None
    failure: str | None = None
    final: bool = False


def host_of(url: str) -> str:
    """The URL's host, lower-cased ('' when it has none)."""
    return (urlsplit(url).hostname or "").lower()


def under_api(url: str, api_base_url: str) -> bool:
    """Whether `url` is an http(s) URL on the Twilio API's host (and port)."""
    given, api = urlsplit(url), urlsplit(api_base_url)
    return given.scheme in ("http", "https") and given.netloc.lower() == api.netloc.lower()


async def fetch(
    session: aiohttp.ClientSession,
    url: str,
    *,
    auth: aiohttp.BasicAuth,
    hosts: list[str],
    timeout: float,
) -> Fetched:
    """Download `url` (on the API host) with `auth`, following redirects to `hosts` bare."""
    limit = aiohttp.ClientTimeout(total=timeout)
    current = url
    credentials: aiohttp.BasicAuth | None = auth
    try:
        for _ in range(MAX_REDIRECTS + 1):
            async with session.get(
                URL(current, encoded=True), auth=credentials, allow_redirects=False, timeout=limit
            ) as answer:
                if answer.status in REDIRECTS:
                    current = urljoin(current, answer.headers.get("Location", ""))
                    if host_of(current) not in hosts or urlsplit(current).scheme not in (
                        "http",
                        "https",
                    ):
                        return Fetched(failure="redirect_host", final=True)
                    credentials = None  # never to the CDN
                    continue
                return await _body(answer)
    except (aiohttp.ClientError, TimeoutError, OSError):
        return Fetched(failure="network")
    return Fetched(failure="redirects", final=True)


async def _body(answer: aiohttp.ClientResponse) -> Fetched:
    """The bytes of a 200, read up to the cap; a 404 is final, other errors are retried."""
    if answer.status in (401, 403, 404, 410):
        return Fetched(failure=f"http_{answer.status}", final=True)
    if answer.status != 200:
        return Fetched(failure=f"http_{answer.status}")
    if (answer.content_length or 0) > MAX_BYTES:
        return Fetched(failure="too_large", final=True)
    data = bytearray()
    async for chunk in answer.content.iter_chunked(CHUNK):
        data += chunk
        if len(data) > MAX_BYTES:
            return Fetched(failure="too_large", final=True)
    return Fetched(data=bytes(data))


# The types kept (contract §17); anything else is noted and never downloaded.
KEPT_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/heic", "image/heif"})


def refusal(url: str, content_type: str, *, api_base_url: str) -> str | None:
    """Why an MMS item is not downloaded (None: it is)."""
    if content_type not in KEPT_TYPES:
        return "type"
    if not under_api(url, api_base_url):
        return "url_host"
    return None
