"""One JSON object a line; phone numbers masked wherever they appear (design invariant 8).

A database error's own text is never logged: PostgreSQL's DETAIL quotes the values of a
failing row ("Failing row contains (…)", "Key (phone)=(…)") and SQLAlchemy may append a
statement's parameters. Its traceback, type, error code and statement (bound parameters,
never values) say enough to an operator.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from aiohttp.http import HttpProcessingError

from service.observability.masking import mask_phones

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
# aiohttp's access logger adds these; the request line and status say enough.
_NOISE = {"request_header", "first_request_line", "request_start_time", "remote_address"}
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object, with its `extra` fields, numbers masked."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line."""
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in _NOISE and not key.startswith("_"):
                entry[key] = value if isinstance(value, int | float | bool | None) else str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return mask_phones(json.dumps(entry, default=str))

    def formatException(self, ei: Any) -> str:
        """The traceback of an exception and of its causes, database errors' texts withheld."""
        exc: BaseException | None = ei[1]
        if exc is None:
            return super().formatException(ei)
        parts: list[str] = []
        seen: set[int] = set()
        while exc is not None and id(exc) not in seen:
            seen.add(id(exc))
            frames = "".join(traceback.format_tb(exc.__traceback__))
            parts.insert(0, f"Traceback (most recent call last):\n{frames}{_headline(exc)}")
            exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
        return "\n\nThe above exception caused the next one:\n\n".join(parts)


# Whose exceptions may quote a row's values or a statement's parameters in their text.
_DATABASE_MODULES = ("sqlalchemy", "sqlite3", "asyncpg", "psycopg", "aiosqlite", "alembic")


def _headline(exc: BaseException) -> str:
    """`Type: message`; for a database error the type, its code and its statement only."""
    module = type(exc).__module__
    name = type(exc).__qualname__ if module == "builtins" else f"{module}.{type(exc).__qualname__}"
    if not module.startswith(_DATABASE_MODULES):
        return f"{name}: {exc}"
    code = next(
        (v for a in ("sqlite_errorname", "sqlstate", "pgcode") if (v := getattr(exc, a, None))),
        None,
    )
    statement = getattr(exc, "statement", None)
    said = [f"code {code}" if code else "", f"statement {statement!s:.300}" if statement else ""]
    return f"{name}: (text withheld: it may quote personal data) " + " ".join(filter(None, said))


def stamp_request_id(record: logging.LogRecord) -> bool:
    """Handler filter: note the id of the request being handled when the record was made."""
    request_id = REQUEST_ID.get()
    if request_id is not None:
        record.request_id = request_id
    return True


def malformed_requests_are_warnings(record: logging.LogRecord) -> bool:
    """Handler filter: a request aiohttp could not parse (a bad Content-Length, a garbled
    request line: its 400 before any handler) is the client's fault, said as one warning line
    without a traceback; as aiohttp logs it, an ERROR with a traceback that anyone could make
    and that an operator would take for a fault of ours."""
    exc = record.exc_info[1] if record.exc_info else None
    if record.name == "aiohttp.server" and isinstance(exc, HttpProcessingError):
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.msg, record.args = "malformed request refused (400): %s", (type(exc).__name__,)
        record.exc_info, record.exc_text = None, None
    return True


class StampProcess:
    """Handler filter, with several workers: which process wrote the line (`proc`:
    `supervisor` or `worker-N`, and its `pid`), since they share one stderr."""

    def __init__(self, role: str) -> None:
        self.role = role

    def __call__(self, record: logging.LogRecord) -> bool:
        record.proc = self.role
        record.pid = record.process
        return True


def configure_logging(level: int = logging.INFO, *, worker: int | str | None = None) -> None:
    """Send every log record to stderr as JSON lines; with several workers, each line says
    which process wrote it (`worker`: its number, or "supervisor")."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(stamp_request_id)
    handler.addFilter(malformed_requests_are_warnings)
    if worker is not None:
        role = worker if isinstance(worker, str) else f"worker-{worker}"
        handler.addFilter(StampProcess(role))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("twilio").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
