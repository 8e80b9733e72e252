"""Patients' photos in the console (contract §16/§17): their bytes at
`/console/clinics/{clinic_id}/media/{media_id}`, only to signed-in staff of that clinic, and
how a page names a reply's photos (a thumbnail, or a note while one is not there).

The guard already asks for a session (else 303 to sign-in) and sets `Cache-Control: no-store`
with `X-Content-Type-Options: nosniff` on every /console response; the handler sets both
again so that the route stays safe wherever it is mounted. Another clinic's photo, an unknown
one, or one not stored (pending, refused, failed, pruned) is the same 404 page.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote

from aiohttp import web

from service.console.auth import require_clinic
from service.console.deps import CONSOLE
from service.reads import media as media_reads
from service.reads.media import MediaView

routes = web.RouteTableDef()
PHOTO = "/console/clinics/{clinic_id}/media/{media_id}"
MEDIA_ID_LENGTH = 32  # the column's length: longer names nothing
# What a page says of an item that is not (or not yet) a photo to show.
NOTES = {
    "pending": "Photo arriving…",
    "failed": "Photo could not be downloaded from Twilio.",
}
REFUSED = {
    "type": "An attachment that is not a photo was not kept.",
    "too_large": "A photo over 5 MB was not kept.",
    "not_an_image": "An attachment that is not a readable photo was not kept.",
}


@routes.get(PHOTO)
async def photo(request: web.Request) -> web.Response:
    """A stored photo's bytes, with their stored type; never cached."""
    clinic_id, media_id = request.match_info["clinic_id"], request.match_info["media_id"]
    require_clinic(request, clinic_id)
    if len(media_id) > MEDIA_ID_LENGTH:
        raise web.HTTPNotFound()
    found = await request.app[CONSOLE].transactions.read(
        lambda s: media_reads.stored(s, [clinic_id], media_id)
    )
    if found is None:
        raise web.HTTPNotFound()
    content_type, data = found
    headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
    return web.Response(body=data, content_type=content_type, headers=headers)


def photo_url(clinic_id: str, media_id: str) -> str:
    """The console's path of a photo (ids quoted)."""
    return f"/console/clinics/{quote(clinic_id, safe='')}/media/{quote(media_id, safe='')}"


@dataclass(frozen=True, kw_only=True)
class PhotoView:
    """One item of a reply as a page shows it: `url` when it is a photo to show, else a
    `note` saying why not (yet)."""

    id: str
    state: str
    url: str | None
    alt: str
    note: str | None


def photo_views(clinic_id: str, media: Iterable[MediaView], *, who: str) -> list[PhotoView]:
    """A reply's items for a template; `who` names the sender in the alt text."""
    return [
        PhotoView(
            id=m.id,
            state=m.state,
            url=photo_url(clinic_id, m.id) if m.state == "stored" else None,
            alt=f"Photo from {who}",
            note=_note(m),
        )
        for m in media
    ]


def _note(m: MediaView) -> str | None:
    if m.state == "stored":
        return None
    if m.state == "refused":
        return REFUSED.get(m.reason or "", "An attachment was not kept.")
    return NOTES.get(m.state, "Photo not available.")
