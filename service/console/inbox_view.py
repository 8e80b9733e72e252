"""How the inbox shows an item (pure): its title, the patient, how long it has waited, and the
short confirmations shown after an action. Templates get plain strings; Jinja escapes them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

from service.console.photos import PhotoView, photo_views
from service.reads.inbox import InboxItem
from service.reads.media import MediaView

LEVELS = {
    "urgent": "Urgent",
    "watch": "Watch",
    "free_text": "Free text",
    "outside": "Outside a check-in",
    "ok": "OK",
    "photo": "Photo",
}
# After an action the inbox is redirected to with `?done=<key>`: only these fixed texts show
# (nothing a request sends is ever echoed back).
NOTICES = {
    "acknowledged": "Acknowledged. The on-call number will not be alerted again.",
    "done": "Marked done. The item has left the inbox.",
    "already": "Someone had already dealt with that item.",
}


@dataclass(frozen=True, kw_only=True)
class ItemView:
    """One item as the inbox template shows it."""

    id: str
    kind: str
    title: str
    urgent: bool
    clinic: str
    who: str
    last_four: str
    patient_url: str | None
    text: str | None
    detail: str | None
    waited: str
    escalation_id: str | None
    photos: list[PhotoView]


def waited(seconds: float) -> str:
    """How long an item has waited, as a person says it: "under 1 min", "12 min", "2 h 5 min",
    "3 days"."""
    minutes = int(seconds // 60)
    if minutes < 1:
        return "under 1 min"
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    days = hours // 24
    return "1 day" if days == 1 else f"{days} days"


def _title(item: InboxItem) -> str:
    if item["kind"] == "escalation":
        return f"{LEVELS.get(item['level'] or '', 'Urgent')} reply"
    if item["kind"] == "reply" and item["level"] == "photo":
        return "Photo reply"
    if item["kind"] == "reply":
        return f"Reply ({LEVELS.get(item['level'] or '', 'Reply')})"
    return f"Message {item['status'] or 'failed'}"


def _detail(item: InboxItem) -> str | None:
    if item["kind"] == "escalation":
        return f"Or text ACK {item['code']} from the on-call phone" if item["code"] else None
    if item["kind"] != "message":
        return None
    parts = [f"step {item['step']}" if item["step"] else None, item["message_kind"]]
    if item["error_code"] is not None:
        parts.append(f"error {item['error_code']}")
    return ", ".join(p for p in parts if p) or None


def reply_id(item: InboxItem) -> int | None:
    """The `inbound` row of a reply item (its photos are that row's)."""
    kind, _, ref = item["id"].partition(":")
    return int(ref) if kind == "reply" and ref.isdigit() else None


def view(
    item: InboxItem,
    *,
    clinic_names: Mapping[str, str],
    media: Mapping[int, list[MediaView]] | None = None,
) -> ItemView:
    """`item` for the template; `clinic_names` names the account's clinics, `media` the
    photos of replies by their `inbound` id (`reads.media.media_of_replies`)."""
    patient, kind = item["patient"], item["kind"]
    who = patient["first_name"] or "Unknown number"
    url = None
    if patient["patient_id"]:
        clinic_id, patient_id = (
            quote(item["clinic_id"], safe=""),
            quote(patient["patient_id"], safe=""),
        )
        url = f"/console/clinics/{clinic_id}/patients/{patient_id}"
    return ItemView(
        id=item["id"],
        kind=kind,
        title=_title(item),
        urgent=kind == "escalation",
        clinic=clinic_names.get(item["clinic_id"], item["clinic_id"]),
        who=who,
        last_four=patient["last_four"],
        patient_url=url,
        text=item["text"],
        detail=_detail(item),
        waited=waited(item["open_seconds"]),
        escalation_id=item["id"].split(":", 1)[1] if kind == "escalation" else None,
        photos=photo_views(item["clinic_id"], (media or {}).get(reply_id(item) or -1, []), who=who),
    )
