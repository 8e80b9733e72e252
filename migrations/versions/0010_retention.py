"""retention: indexes the pruner finds old rows by (contract §19)

Each table the pruner deletes from by age gets an index on that age, so that a batch reads
only the rows it deletes; escalations get one on their check-in, so that deleting a message
(and the foreign key's check) does not scan them all.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-10
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    ("event", "received_at"),
    ("inbound", "received_at"),
    ("patient", "updated_at"),
    ("treatment", "created_at"),
    ("appointment", "updated_at"),
    ("escalation", "message_id"),
)


def upgrade() -> None:
    for table, column in INDEXES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(f"ix_{table}_{column}", [column], unique=False)


def downgrade() -> None:
    for table, column in reversed(INDEXES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(f"ix_{table}_{column}")
