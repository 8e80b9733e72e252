"""Photo check-ins (contract §17), from outside: the real app over HTTP, the real downloader
against the fake Twilio's media and its CDN. A JPEG with GPS comes back from the media API
without EXIF, upright and decodable, and Twilio's copy is deleted; a 6 MB image and a PDF are
noted and not kept while the reply is answered; a redirect off `twilio.media_hosts` is not
followed (and no credentials leave the API host); a refused download is retried; a photo
with "3" is urgent, a photo alone escalates where `photo` is escalated; another clinic gets
nothing; erasure and retention remove the bytes. The world is tests/fixtures/photos.py's.
"""

from __future__ import annotations

import io
import os
from datetime import timedelta

from PIL import Image

from service.storage.retention import RULES
from service.web.keys import CLOCK, TRANSACTIONS
from tests.fixtures.conversations import NURSE, alerted
from tests.fixtures.photos import StartPhotos, gps_jpeg, photos
from tests.helpers.client import bearer
from tests.processes import until_async as until
from tests.support import OTHER_TOKEN, TOKEN

__all__ = ["photos"]  # the fixture, from tests/fixtures/photos.py


async def test_a_gps_jpeg_comes_back_without_exif_upright_and_twilio_deletes_it(
    photos: StartPhotos,
) -> None:
    """The reply is answered at once (level `photo`, its media named pending); the photo is
    then served without any EXIF, turned upright, no-store; Twilio records the DELETE."""
    p = await photos()
    await p.c.checked_in()
    answer = await p.mms("", [(gps_jpeg(), "image/jpeg")])
    assert "will read your message" in answer  # the fallback answer, not held by the download
    [named] = await p.media_ids()
    assert named["content_type"] == "image/jpeg" and named["state"] == "pending"
    replied = next(n for n in await p.c.notifications() if n["type"] == "checkin.replied")
    assert replied["data"]["reply"]["level"] == "photo"
    assert await p.settled(named["id"]) == 200
    response = await p.get(named["id"])
    assert response.headers["Cache-Control"] == "no-store"
    assert response.content_type == "image/jpeg"
    image = Image.open(io.BytesIO(await response.read()))
    image.load()
    assert image.size == (40, 60)  # orientation 6 applied
    assert not image.getexif() and "exif" not in image.info
    sid = next(iter(p.c.fake.media.gets))[0]
    await until(lambda: _true(sid in p.c.fake.media.deleted))
    assert all(authorised for _, authorised in p.c.fake.media.gets)
    assert all(auth is None for _, auth in p.c.fake.media.cdn_gets)  # no credentials to the CDN


async def _true(value: bool) -> bool:
    return value


async def test_a_6mb_image_and_a_pdf_are_noted_and_not_kept(photos: StartPhotos) -> None:
    """Both refused (too large; not a type kept), the PDF never fetched; the reply stands."""
    p = await photos()
    await p.c.checked_in()
    answer = await p.mms(
        "2", [(os.urandom(6 * 1024 * 1024), "image/jpeg"), (b"%PDF-1.4", "application/pdf")]
    )
    assert "Redness is normal." in answer
    big, pdf = await p.media_ids()
    assert pdf["state"] == "refused" and big["state"] == "pending"
    assert await p.settled(big["id"]) == 404
    assert (await p.get(pdf["id"])).status == 404
    assert len(p.c.fake.media.gets) == 1  # the PDF was never asked for


async def test_a_redirect_off_the_media_hosts_is_not_followed(photos: StartPhotos) -> None:
    """Twilio's redirect to a host not listed: not followed, the photo failed, nothing kept."""
    p = await photos()
    await p.c.checked_in()
    p.c.fake.media.redirect_host = p.c.fake.media.cdn_base.replace("127.0.0.2", "localhost")
    await p.mms("", [(gps_jpeg(), "image/jpeg")])
    [named] = await p.media_ids()
    assert await p.settled(named["id"]) == 404
    assert p.c.fake.media.cdn_gets == []  # never reached, with or without credentials


async def test_a_refused_first_download_is_retried_and_the_image_arrives(
    photos: StartPhotos,
) -> None:
    p = await photos()
    await p.c.checked_in()
    p.c.fake.media.refuse_first = 1
    await p.mms("", [(gps_jpeg(), "image/jpeg")])
    [named] = await p.media_ids()
    assert await p.settled(named["id"]) == 200
    assert len(p.c.fake.media.gets) == 2


async def test_a_photo_with_a_3_is_urgent(photos: StartPhotos) -> None:
    p = await photos()
    await p.c.checked_in()
    answer = await p.mms("3", [(gps_jpeg(), "image/jpeg")])
    assert "someone will call you" in answer
    await alerted(p.c, 1)
    replied = next(n for n in await p.c.notifications() if n["type"] == "checkin.replied")
    assert replied["data"]["reply"]["level"] == "urgent" and len(replied["data"]["media"]) == 1


async def test_a_photo_alone_alerts_on_call_where_photo_is_escalated(photos: StartPhotos) -> None:
    p = await photos(escalate_levels=["urgent", "photo"])
    await p.c.checked_in()
    await p.mms("", [(gps_jpeg(), "image/jpeg")])
    await alerted(p.c, 1)
    [alert] = p.c.to(NURSE)
    assert "PHOTO reply" in alert and "A photo came" in alert


async def test_another_clinics_token_gets_nothing(photos: StartPhotos) -> None:
    p = await photos()
    await p.c.checked_in()
    await p.mms("", [(gps_jpeg(), "image/jpeg")])
    [named] = await p.media_ids()
    assert await p.settled(named["id"]) == 200
    assert (await p.get(named["id"], token=OTHER_TOKEN)).status == 403
    assert (await p.get(named["id"], token=OTHER_TOKEN, clinic="other")).status == 404
    assert (await p.get("0" * 32)).status == 404


async def test_erasure_and_retention_remove_the_bytes(photos: StartPhotos) -> None:
    p = await photos()
    await p.c.checked_in()
    for _ in range(2):
        await p.mms("", [(gps_jpeg(), "image/jpeg")])
    first, second = [
        n["data"]["media"][0]["id"] for n in await p.c.notifications() if "media" in n["data"]
    ]
    for media_id in (first, second):
        assert await p.settled(media_id) == 200
    app = p.c.client.app
    later = app[CLOCK].now() + timedelta(days=91)
    [rule] = [r for r in RULES if r.period == "media"]
    pruned = await app[TRANSACTIONS].write(lambda s: rule.prune(s, before=later, limit=1))
    assert pruned == 1
    kept = [m for m in (first, second) if (await p.get(m)).status == 200]
    assert len(kept) == 1
    erased = await p.c.client.post("/v1/clinics/glow/patients/pt_77/erase", headers=bearer(TOKEN))
    assert erased.status == 200, await erased.text()
    assert (await erased.json())["erased"]["media"] == 1
    assert (await p.get(kept[0])).status == 404


def _heic(width: int, height: int) -> bytes:
    """A HEIC photo as an iPhone sends it (pillow-heif encodes it), with a camera model."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    exif = Image.Exif()
    exif[0x0110] = "iPhone 15"  # Model
    out = io.BytesIO()
    Image.new("RGB", (width, height), (180, 120, 100)).save(out, format="HEIF", exif=exif)
    return out.getvalue()


async def test_an_iphone_heic_photo_is_kept_as_a_jpeg_without_its_camera(
    photos: StartPhotos,
) -> None:
    """`image/heic` (iPhones send it) is decoded through pillow-heif and served as a JPEG a
    browser shows, the same size, with no EXIF (the camera model gone)."""
    p = await photos()
    await p.c.checked_in()
    raw = _heic(64, 48)
    assert b"iPhone 15" in raw  # the camera is in what Twilio would hand us
    await p.mms("", [(raw, "image/heic")])
    [named] = await p.media_ids()
    assert await p.settled(named["id"]) == 200
    response = await p.get(named["id"])
    assert response.content_type == "image/jpeg"
    image = Image.open(io.BytesIO(await response.read()))
    image.load()
    assert (image.format, image.size) == ("JPEG", (64, 48))
    assert not image.getexif() and b"iPhone" not in await response.read()
