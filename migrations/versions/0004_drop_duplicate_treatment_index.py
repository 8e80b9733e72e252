"""drop ix_message_treatment_id: the unique (treatment_id, step, seq) index already serves it

Every new message paid for one more B-tree than its lookups use; lookups by treatment and the
foreign key's checks use the unique index's leading column on SQLite and PostgreSQL alike.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_index("ix_message_treatment_id")


def downgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.create_index("ix_message_treatment_id", ["treatment_id"], unique=False)
