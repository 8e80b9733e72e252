"""inbound idempotency: a reply kept once per MessageSid with its answer and channel; ACK codes

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-09
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = sqlmodel.sql.sqltypes.AutoString
OPEN = sa.text("state = 'open'")


def upgrade() -> None:
    with op.batch_alter_table("inbound", schema=None) as batch_op:
        batch_op.add_column(sa.Column("channel", S(length=16), nullable=True))
        batch_op.add_column(sa.Column("answer", sa.Text(), nullable=True))
    # Replies kept twice before this revision (Twilio's retries) keep their first row.
    op.execute(
        "UPDATE inbound SET provider_id = NULL WHERE provider_id IS NOT NULL AND id NOT IN"
        " (SELECT min(id) FROM inbound WHERE provider_id IS NOT NULL GROUP BY provider_id)"
    )
    with op.batch_alter_table("inbound", schema=None) as batch_op:
        batch_op.create_index("ux_inbound_provider_id", ["provider_id"], unique=True)
    with op.batch_alter_table("escalation", schema=None) as batch_op:
        batch_op.add_column(sa.Column("code", S(length=8), nullable=True))
    op.create_index(
        "ux_escalation_open_code",
        "escalation",
        ["clinic_id", "code"],
        unique=True,
        sqlite_where=OPEN,
        postgresql_where=OPEN,
    )


def downgrade() -> None:
    op.drop_index("ux_escalation_open_code", table_name="escalation")
    with op.batch_alter_table("escalation", schema=None) as batch_op:
        batch_op.drop_column("code")
    with op.batch_alter_table("inbound", schema=None) as batch_op:
        batch_op.drop_index("ux_inbound_provider_id")
        batch_op.drop_column("answer")
        batch_op.drop_column("channel")
