"""What `reads.inbox.inbox_version` costs on SQLite with 100k messages (1% failed) and 10k
replies (half watch/free_text/outside, a third of those marked done) and 50 open escalations:
the median of 200 calls, in ms. `python -m bench.inbox_version` (a temporary file)."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import Session

from service.reads import inbox
from service.storage.conversation_tables import ESCALATION
from service.storage.inbound_rows import INBOUND
from service.storage.inbox_tables import INBOX_DONE
from service.storage.tables import MESSAGE, PATIENT, TREATMENT


def fill(engine: sa.Engine) -> None:
    """The rows, in one transaction."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(
            PATIENT.insert(),
            [
                {
                    "id": i,
                    "clinic_id": "glow",
                    "external_id": f"p{i}",
                    "first_name": "Ana",
                    "phone": f"+1415555{i:04d}",
                    "timezone": "UTC",
                    "sms_consent": True,
                    "updated_at": t0,
                }
                for i in range(1, 5001)
            ],
        )
        conn.execute(
            TREATMENT.insert(),
            [
                {
                    "id": i,
                    "clinic_id": "glow",
                    "external_id": f"t{i}",
                    "patient_id": i,
                    "protocol": "care",
                    "completed_at": t0,
                    "session_number": 1,
                    "sessions_planned": 1,
                    "serum": "",
                    "created_at": t0,
                }
                for i in range(1, 5001)
            ],
        )
        conn.execute(
            MESSAGE.insert(),
            [
                {
                    "id": f"msg_{i}",
                    "clinic_id": "glow",
                    "treatment_id": i % 5000 + 1,
                    "patient_id": i % 5000 + 1,
                    "step": "s",
                    "kind": "aftercare",
                    "seq": i,
                    "phone": "+14155550000",
                    "locale": "en",
                    "body": "x",
                    "send_at": t0 + timedelta(minutes=i),
                    "due_at": t0,
                    "expires_at": t0,
                    "status": "failed" if i % 100 == 0 else "delivered",
                    "updated_at": t0,
                    "attempts": 1,
                    "footer": False,
                }
                for i in range(100_000)
            ],
        )
        levels = ["ok", "watch", "free_text", "outside"]
        conn.execute(
            INBOUND.insert(),
            [
                {
                    "id": i,
                    "clinic_id": "glow",
                    "phone": "+14155550000",
                    "body": "hi",
                    "received_at": t0 + timedelta(minutes=i),
                    "level": levels[i % 4],
                    "patient_id": i % 5000 + 1,
                }
                for i in range(1, 10_001)
            ],
        )
        conn.execute(
            INBOX_DONE.insert(),
            [
                {
                    "kind": "reply",
                    "ref": str(i),
                    "clinic_id": "glow",
                    "done_at": t0,
                    "done_by": "n@x",
                }
                for i in range(1, 10_001, 3)
            ],
        )
        conn.execute(
            ESCALATION.insert(),
            [
                {
                    "id": f"esc_{i}",
                    "clinic_id": "glow",
                    "message_id": f"msg_{i}",
                    "level": "urgent",
                    "reply": "3",
                    "state": "open",
                    "opened_at": t0,
                }
                for i in range(50)
            ],
        )


def main() -> None:
    path = Path(tempfile.mkdtemp()) / "bench.db"
    url = f"sqlite+aiosqlite:///{path}"
    upgrade = (
        "from alembic import command; from service.storage.database import alembic_config; "
        f"command.upgrade(alembic_config({url!r}), 'head')"
    )
    subprocess.run([sys.executable, "-c", upgrade], check=True)
    engine = sa.create_engine(f"sqlite:///{path}")
    fill(engine)
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
    with Session(engine) as s:
        took = []
        for _ in range(200):
            started = time.perf_counter()
            inbox.inbox_version(s, ["glow"])
            took.append((time.perf_counter() - started) * 1000)
    print(
        f"inbox_version: median {statistics.median(took):.2f} ms, p95 "
        f"{sorted(took)[189]:.2f} ms over 200 calls (100k messages, 10k replies)"
    )


if __name__ == "__main__":
    main()
