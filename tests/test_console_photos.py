"""Patients' photos in the console (contract §16/§17), on the photo tests' world (the real app over
HTTP, MMS posted as Twilio signs them, the fake Twilio's media behind auth and its CDN): the
photo route serves the bytes to the clinic's signed-in staff only, never cached; the inbox shows
a thumbnail (or "Photo arriving…" first, the version changing when it lands); the patient's
timeline shows the image; a refused item says so."""

from __future__ import annotations

import io
import os
import re

from PIL import Image
from pytest_aiohttp import AiohttpClient

from service.clock import SystemClock
from tests.fixtures.console import Client, add_account, sign_in
from tests.fixtures.photos import Photos, StartPhotos, gps_jpeg, photos

__all__ = ["photos"]  # the fixture, from tests/fixtures/photos.py
POLL = {"X-Console-Poll": "1"}


async def _photo(p: Photos, database: str, body: str = "") -> str:
    """Ana checked in and sent a photo; the nurse signed in; the photo's id, once stored."""
    await p.c.checked_in()
    await p.mms(body, [(gps_jpeg(), "image/jpeg")])
    [named] = await p.media_ids()
    assert await p.settled(named["id"]) == 200
    await add_account(database, clock=SystemClock())
    assert (await sign_in(p.c.client)).status == 303
    return str(named["id"])


async def _page(client: Client, path: str) -> str:
    answer = await client.get(path, allow_redirects=False)
    assert answer.status == 200, await answer.text()
    return str(await answer.text())


async def test_the_clinics_staff_get_the_photo_never_cached(
    photos: StartPhotos, database: str
) -> None:
    """The stored JPEG (no EXIF, upright), its type, no-store, nosniff, under the console CSP."""
    p = await photos()
    media_id = await _photo(p, database)
    answer = await p.c.client.get(f"/console/clinics/glow/media/{media_id}")
    assert answer.status == 200 and answer.content_type == "image/jpeg"
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'self'" in answer.headers["Content-Security-Policy"]
    image = Image.open(io.BytesIO(await answer.read()))
    assert image.size == (40, 60) and not image.getexif()


async def test_another_clinics_staff_and_strangers_get_nothing(
    photos: StartPhotos, database: str, aiohttp_client: AiohttpClient
) -> None:
    """Another clinic's nurse: 404 by either clinic's path; no session: 303 to sign-in, the
    page asked for remembered; an unknown id or one too long: 404."""
    p = await photos()
    media_id = await _photo(p, database)
    path = f"/console/clinics/glow/media/{media_id}"
    stranger: Client = await aiohttp_client(p.c.client.server)
    answer = await stranger.get(path, allow_redirects=False)
    assert answer.status == 303
    assert answer.headers["Location"] == f"/console/login?next={path}"
    await add_account(database, clock=SystemClock(), email="desk@other.example", clinics=("other",))
    assert (await sign_in(stranger, email="desk@other.example")).status == 303
    for asked in (path, f"/console/clinics/other/media/{media_id}"):
        answer = await stranger.get(asked, allow_redirects=False)
        assert answer.status == 404 and answer.content_type == "text/html"
        assert answer.headers["Cache-Control"] == "no-store"
    for unknown in ("0" * 32, "0" * 33):
        answer = await p.c.client.get(f"/console/clinics/glow/media/{unknown}")
        assert answer.status == 404


async def test_the_inbox_and_the_timeline_show_the_photo(
    photos: StartPhotos, database: str
) -> None:
    """A photo reply reads "Photo reply" with a thumbnail linking to the image, alt text
    naming Ana; the patient page shows the image under the reply."""
    p = await photos()
    media_id = await _photo(p, database, body="1")
    url = f"/console/clinics/glow/media/{media_id}"
    inbox = await _page(p.c.client, "/console/")
    assert ">Photo reply</h2>" in inbox and "Look at these" not in inbox
    assert f'<a class="photos__link" href="{url}"><img class="photos__thumb" src="{url}"' in inbox
    assert 'alt="Photo from Ana"' in inbox
    fragment = await _page(p.c.client, "/console/inbox/items")
    assert f'src="{url}"' in fragment  # live updates use the same partial
    timeline = await _page(p.c.client, "/console/clinics/glow/patients/pt_77")
    assert re.search(rf'<img class="timeline__photo" src="{url}" alt="Photo from Ana">', timeline)


async def test_a_photo_arriving_then_landing_changes_the_inbox_version(
    photos: StartPhotos, database: str
) -> None:
    """While the download is retried the inbox says "Photo arriving…"; once stored the
    version the page polls changes and the fragment has the thumbnail."""
    p = await photos()
    await p.c.checked_in()
    await add_account(database, clock=SystemClock())
    assert (await sign_in(p.c.client)).status == 303
    p.c.fake.media.refuse_first = 1  # a 500 first: retried 2 s later
    await p.mms("", [(gps_jpeg(), "image/jpeg")])
    [named] = await p.media_ids()
    before = await (await p.c.client.get("/console/inbox/version", headers=POLL)).json()
    assert "Photo arriving…" in await _page(p.c.client, "/console/inbox/items")
    assert await p.settled(named["id"]) == 200
    after = await (await p.c.client.get("/console/inbox/version", headers=POLL)).json()
    assert after["version"] != before["version"]
    assert f"/media/{named['id']}" in await _page(p.c.client, "/console/inbox/items")


async def test_a_file_not_kept_is_named_not_shown(photos: StartPhotos, database: str) -> None:
    """A PDF beside a photo too large: both noted in words, no image, the reply stands."""
    p = await photos()
    await p.c.checked_in()
    await p.mms("", [(os.urandom(6 * 1024 * 1024), "image/jpeg"), (b"%PDF-1.4", "application/pdf")])
    big, _ = await p.media_ids()
    assert await p.settled(big["id"]) == 404
    await add_account(database, clock=SystemClock())
    assert (await sign_in(p.c.client)).status == 303
    timeline = await _page(p.c.client, "/console/clinics/glow/patients/pt_77")
    assert "A photo over 5 MB was not kept." in timeline
    assert "An attachment that is not a photo was not kept." in timeline
    assert "<img" not in timeline
