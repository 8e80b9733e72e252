"""conversations: escalations of check-in replies, and opt-outs of one kind (contract §10, §12)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "escalation",
        sa.Column("id", S(length=32), nullable=False),
        sa.Column("clinic_id", S(length=64), nullable=False),
        sa.Column("message_id", S(length=32), nullable=False),
        sa.Column("level", S(length=16), nullable=False),
        sa.Column("reply", sa.Text(), nullable=False),
        sa.Column("state", S(length=16), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by", S(length=100), nullable=True),
        sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["message_id"], ["message.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("escalation", schema=None) as batch_op:
        batch_op.create_index(
            "ix_escalation_clinic_state_opened",
            ["clinic_id", "state", "opened_at", "id"],
            unique=False,
        )
        batch_op.create_index("ix_escalation_state_opened", ["state", "opened_at"], unique=False)
    op.create_table(
        "kind_opt_out",
        sa.Column("clinic_id", S(length=64), nullable=False),
        sa.Column("phone", S(length=20), nullable=False),
        sa.Column("kind", S(length=16), nullable=False),
        sa.Column("word", S(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("clinic_id", "phone", "kind"),
    )


def downgrade() -> None:
    op.drop_table("kind_opt_out")
    with op.batch_alter_table("escalation", schema=None) as batch_op:
        batch_op.drop_index("ix_escalation_state_opened")
        batch_op.drop_index("ix_escalation_clinic_state_opened")
    op.drop_table("escalation")
