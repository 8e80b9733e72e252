"""Query parameters of the message lists (contract §8) and their opaque cursor; pure.

Lists are newest first by `(send_at, id)`. A cursor is the position of the last message of a
page (keyset pagination), so messages stored while a client pages neither shift the pages
nor make one repeat or skip a message.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from service.errors import FieldError, Unprocessable
from service.storage.models import Status
from service.storage.outbox import NotificationState

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
T = TypeVar("T")
Q = TypeVar("Q")  # a list's query


@dataclass(frozen=True)
class Cursor:
    """Where a page ended: the last message's `send_at` and `id` (a notification's
    `created_at` and `id`)."""

    send_at: datetime
    id: str


@dataclass(frozen=True)
class MessageQuery:
    """A page of messages: filters (send_at in [since, until)), size, and where to start."""

    status: Status | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = DEFAULT_LIMIT
    after: Cursor | None = None


@dataclass(frozen=True)
class NotificationQuery:
    """A page of notifications: of one state or all, its size, and where to start (a
    `Cursor` on `(created_at, id)`)."""

    state: NotificationState | None = None
    limit: int = DEFAULT_LIMIT
    after: Cursor | None = None


def encode_cursor(cursor: Cursor) -> str:
    """The opaque text form of a cursor (URL-safe)."""
    raw = json.dumps([cursor.send_at.astimezone(UTC).isoformat(), cursor.id]).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(text: str) -> Cursor:
    """The cursor `encode_cursor` made; ValueError for anything else."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        send_at, message_id = json.loads(raw)
        return Cursor(_aware(datetime.fromisoformat(send_at)), _text(message_id))
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise ValueError("not a cursor from this API; pass next_cursor as given") from None


def parse_query(params: Mapping[str, str]) -> MessageQuery:
    """The query in `params`; Unprocessable listing every wrong parameter."""
    errors: list[FieldError] = []
    query = MessageQuery(
        status=_parsed(errors, params, "status", Status),
        since=_parsed(errors, params, "since", _instant),
        until=_parsed(errors, params, "until", _instant),
        limit=_parsed(errors, params, "limit", _limit) or DEFAULT_LIMIT,
        after=_parsed(errors, params, "cursor", decode_cursor),
    )
    if query.since and query.until and query.since >= query.until:
        errors.append(FieldError("until", "must be later than since"))
    if errors:
        raise Unprocessable("the query has wrong parameters", errors=errors)
    return query


def parse_notification_query(params: Mapping[str, str]) -> NotificationQuery:
    """The notifications list's query in `params`; Unprocessable listing every wrong one."""
    return _state_page(params, NotificationQuery, _state)


def _state_page(
    params: Mapping[str, str], query: Callable[..., Q], state: Callable[[str], object]
) -> Q:
    """A list's query of one state or all, a page size and a cursor (notifications,
    escalations), `state` parsing the state; Unprocessable listing every wrong parameter."""
    errors: list[FieldError] = []
    parsed = query(
        state=_parsed(errors, params, "state", state),
        limit=_parsed(errors, params, "limit", _limit) or DEFAULT_LIMIT,
        after=_parsed(errors, params, "cursor", decode_cursor),
    )
    if errors:
        raise Unprocessable("the query has wrong parameters", errors=errors)
    return parsed


def _state(text: str) -> NotificationState:
    try:
        return NotificationState(text)
    except ValueError:
        states = ", ".join(s.value for s in NotificationState)
        raise ValueError(f"must be one of {states}") from None


@dataclass(frozen=True)
class EscalationQuery:
    """A page of escalations (contract §10): by state, newest first by (opened_at, id)."""

    state: str | None = None
    limit: int = DEFAULT_LIMIT
    after: Cursor | None = None  # its `send_at` is the last escalation's `opened_at`


ESCALATION_STATES = ("open", "acknowledged")


def parse_escalation_query(params: Mapping[str, str]) -> EscalationQuery:
    """The escalations' query in `params`; Unprocessable listing every wrong parameter."""
    return _state_page(params, EscalationQuery, _escalation_state)


def _escalation_state(text: str) -> str:
    if text not in ESCALATION_STATES:
        raise ValueError("must be one of " + ", ".join(ESCALATION_STATES))
    return text


def _parsed(
    errors: list[FieldError], params: Mapping[str, str], name: str, parse: Callable[[str], T]
) -> T | None:
    if name not in params:
        return None
    try:
        return parse(params[name])
    except ValueError as exc:
        message = str(exc) if parse is not Status else _status_message()
        errors.append(FieldError(name, message))
        return None


def _status_message() -> str:
    return "must be one of " + ", ".join(s.value for s in Status)


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("must be an ISO 8601 date-time, e.g. 2026-11-25T15:00:00Z") from None
    try:
        return _aware(value)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before the first UTC instant
        raise ValueError("must be a date-time from year 1 to 9999 in UTC") from None


def _aware(value: datetime) -> datetime:
    if value.utcoffset() is None:
        raise ValueError("must carry a time zone (Z or an offset such as %2B01:00)")
    return value.astimezone(UTC)


def _limit(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_LIMIT:
        raise ValueError(f"must be a whole number from 1 to {MAX_LIMIT}")
    return int(text)


def _text(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("not an id")
    return value


@dataclass(frozen=True)
class AuditQuery:
    """A page of audit rows (contract §16), newest first by (at, id)."""

    limit: int = DEFAULT_LIMIT
    after: Cursor | None = None  # its `send_at` is the last row's `at`, its id the row's


def parse_audit_query(params: Mapping[str, str]) -> AuditQuery:
    """The audit list's query in `params`; Unprocessable listing every wrong parameter."""
    errors: list[FieldError] = []
    query = AuditQuery(
        limit=_parsed(errors, params, "limit", _limit) or DEFAULT_LIMIT,
        after=_parsed(errors, params, "cursor", _audit_cursor),
    )
    if errors:
        raise Unprocessable("the query has wrong parameters", errors=errors)
    return query


def _audit_cursor(text: str) -> Cursor:
    cursor = decode_cursor(text)
    if not (cursor.id.isascii() and cursor.id.isdigit()) or len(cursor.id) > 18:
        raise ValueError("not a cursor of this list; pass next_cursor as given")
    return cursor
