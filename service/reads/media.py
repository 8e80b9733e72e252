"""Photos as the API and the console read them (contract §17): never across clinics.

`media_of_replies` names a page of replies' photos (the console's inbox and timeline show a
thumbnail or a note for each); `stored` hands out one photo's bytes, only to the clinics
given; `state` tells a photo not stored yet from one unknown.
"""

from __future__ import annotations

from collections.abc import Collection

from service.storage import media
from service.storage.media import MediaView
from service.storage.media_store import STORE, MediaStore
from service.storage.transactions import Session

__all__ = ["MediaView", "arriving", "lookup", "media_of_replies", "state", "stored"]


def media_of_replies(s: Session, inbound_ids: list[int]) -> dict[int, list[MediaView]]:
    """The photos of these replies (`inbound` ids), by reply, in the order they came; a
    reply without any is absent. States: pending, stored, refused, failed."""
    found: dict[int, list[MediaView]] = {}
    for view in media.of_replies(s, inbound_ids):
        found.setdefault(view.inbound_id, []).append(view)
    return found


def stored(
    s: Session, clinic_ids: list[str], media_id: str, *, store: MediaStore = STORE
) -> tuple[str, bytes] | None:
    """A stored photo of one of `clinic_ids`: its content type and bytes (None otherwise)."""
    return store.get(s, clinic_ids, media_id)


def arriving(s: Session, clinic_ids: Collection[str]) -> int:
    """How many photos of these clinics are still being downloaded (the console's inbox
    version counts them, so a photo that lands shows without a reload)."""
    return media.pending_count(s, list(clinic_ids)) if clinic_ids else 0


def state(s: Session, clinic_ids: list[str], media_id: str) -> str | None:
    """A photo's state, if it is one of `clinic_ids`' (None: unknown to them)."""
    found = media.state_of(s, clinic_ids, media_id)
    return None if found is None else found[0]


def lookup(s: Session, clinic_ids: list[str], media_id: str) -> tuple[str, bytes] | str | None:
    """A photo of one of `clinic_ids`: its type and bytes when stored, else its state (None:
    unknown). Read in that order, and again when it was stored in between."""
    found = stored(s, clinic_ids, media_id)
    if found is not None:
        return found
    now = state(s, clinic_ids, media_id)
    return stored(s, clinic_ids, media_id) if now == "stored" else now
