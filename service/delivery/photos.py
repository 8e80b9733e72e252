"""The photo downloader (contract §17): a background loop beside the dispatcher, never inside a
request and never ahead of a send.

It claims due `pending` photos across replicas like the deliverer claims notifications
(`storage.media`), downloads each (`media_fetch`), cleans it on a thread (`images`: Pillow is
CPU work that must not stall the event loop), stores it through the `MediaStore`, then deletes
Twilio's copy when `twilio.delete_media`. Every write is a background one through the writer
gate: a claim or a send's outcome goes first. A failed download is due again after
`RETRY_DELAYS` (about an hour in all), then `failed`; the reply it came with was committed long
before and is never touched. The loop and each download run under the `Supervisor`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

import aiohttp

from service.clock import Clock
from service.config import Settings
from service.delivery import images
from service.delivery.media_fetch import Fetched, fetch, under_api
from service.observability.metrics import Metrics
from service.observability.supervision import Supervisor
from service.storage import media
from service.storage.media_store import STORE, MediaStore
from service.storage.media_tables import MediaState
from service.storage.transactions import Session, Transactions

log = logging.getLogger("aftercare.photos")
POLL_SECONDS = 1.0
CONCURRENCY = 4  # downloads in flight per process: photos are big, the writer is shared
RETRY_DELAYS = (2, 30, 300, 1200, 2400)  # seconds after each failure: ~1 h, then failed
TIMEOUT = 30.0  # seconds for one download, redirects included


class Photos:
    """Downloads the pending photos, each claimed once across replicas."""

    def __init__(
        self,
        *,
        settings: Settings,
        transactions: Transactions,
        clock: Clock,
        instance: str,
        metrics: Metrics,
        store: MediaStore = STORE,
    ) -> None:
        self.twilio, self.transactions, self.clock = settings.twilio, transactions, clock
        self.instance, self.store = instance, store
        self.lease = timedelta(seconds=TIMEOUT * 3)
        self.supervisor = Supervisor(metrics)
        self._wake, self._stop = asyncio.Event(), asyncio.Event()
        self._http: aiohttp.ClientSession | None = None
        self._loop: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Open the HTTP session and start the loop (inside the running loop)."""
        self._http = aiohttp.ClientSession()
        looping = self.supervisor.forever(self._run, task="photos", stop=self._stop)
        self._loop = self.supervisor.spawn(looping, task="photos")

    def wake(self) -> None:
        """Look for pending photos now (a reply with photos was just kept)."""
        self._wake.set()

    async def stop(self, *, timeout: float) -> None:
        """Stop claiming; a download in flight gets `timeout` s, else its claim runs out."""
        self._stop.set()
        self._wake.set()
        if self._loop is not None:
            await asyncio.wait({self._loop}, timeout=timeout)
            self._loop.cancel()
        if self._http is not None:
            await self._http.close()

    async def _run(self) -> None:
        while not self._stop.is_set():
            claimed = await self.transactions.write(self._claim)
            if claimed:
                await asyncio.gather(*(self._one(c) for c in claimed), return_exceptions=True)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=POLL_SECONDS)
            self._wake.clear()

    def _claim(self, s: Session) -> list[media.Claimed]:
        now = self.clock.now()
        return media.claim_due(
            s, now=now, instance=self.instance, lease=self.lease, limit=CONCURRENCY
        )

    async def _one(self, claimed: media.Claimed) -> None:
        """One photo, its failure reported: its claim then runs out and it is due again."""
        try:
            await self._download(claimed)
        except Exception as exc:
            self.supervisor.report("photo", exc)

    async def _download(self, claimed: media.Claimed) -> None:
        if not under_api(claimed.url, self.twilio.api_base_url):
            await self._end(claimed, MediaState.REFUSED, "url_host")
            return
        assert self._http is not None
        auth = aiohttp.BasicAuth(self.twilio.account_sid, self.twilio.auth_token.get_secret_value())
        fetched = await fetch(
            self._http, claimed.url, auth=auth, hosts=self.twilio.media_hosts, timeout=TIMEOUT
        )
        if fetched.data is None:
            await self._failed(claimed, fetched)
            return
        try:
            content_type, data = await asyncio.to_thread(images.clean, fetched.data)
        except images.NotAnImage:
            await self._end(claimed, MediaState.REFUSED, "not_an_image", delete=True)
            return
        now = self.clock.now()
        await self.transactions.write(
            lambda s: self.store.put(
                s,
                claimed.id,
                instance=self.instance,
                content_type=content_type,
                data=data,
                now=now,
            )
        )
        await self._delete(claimed)

    async def _failed(self, claimed: media.Claimed, fetched: Fetched) -> None:
        reason = fetched.failure or "unknown"
        log.warning("photo download failed", extra={"media": claimed.id, "error": reason})
        if reason == "too_large":
            await self._end(claimed, MediaState.REFUSED, reason, delete=True)
        elif fetched.final or claimed.attempts + 1 > len(RETRY_DELAYS):
            await self._end(claimed, MediaState.FAILED, reason)
        else:
            due = self.clock.now() + timedelta(seconds=RETRY_DELAYS[claimed.attempts])
            await self.transactions.write(
                lambda s: media.again(s, claimed.id, instance=self.instance, due_at=due)
            )

    async def _end(
        self, claimed: media.Claimed, state: MediaState, reason: str, *, delete: bool = False
    ) -> None:
        await self.transactions.write(
            lambda s: media.end(s, claimed.id, instance=self.instance, state=state, reason=reason)
        )
        if delete:
            await self._delete(claimed)

    async def _delete(self, claimed: media.Claimed) -> None:
        """Twilio's copy deleted (its Media resource), once ours is kept or refused for good;
        a failure is logged and left: the resource is the account's to clean up."""
        if not self.twilio.delete_media or self._http is None:
            return
        auth = aiohttp.BasicAuth(self.twilio.account_sid, self.twilio.auth_token.get_secret_value())
        try:
            async with self._http.delete(
                claimed.url,
                auth=auth,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=TIMEOUT),
            ) as answer:
                if answer.status not in (200, 204, 404):
                    raise aiohttp.ClientError(f"status {answer.status}")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning(
                "photo not deleted from Twilio",
                extra={"media": claimed.id, "error": type(exc).__name__},
            )
            return
        now = self.clock.now()
        await self.transactions.write(lambda s: media.deleted_from_twilio(s, claimed.id, now=now))
