"""index on message (status, send_at): the oldest overdue scheduled message in one seek

`/metrics` reports the age of the oldest scheduled message past its `send_at`
(`aftercare_oldest_overdue_seconds`); without this index that is a scan of every scheduled
row (`due_at` moves with retries, so the (status, due_at) index cannot answer it).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""
from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.create_index("ix_message_status_send", ["status", "send_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_index("ix_message_status_send")
