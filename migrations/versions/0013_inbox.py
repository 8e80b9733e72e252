"""console inbox: what a reply came to (level, message, patient) and items marked done (contract
§16)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-14
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("inbound") as batch:
        batch.add_column(
            sa.Column("level", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True)
        )
        batch.add_column(
            sa.Column("message_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True)
        )
        batch.add_column(sa.Column("patient_id", sa.Integer(), nullable=True))
        batch.create_index(
            "ix_inbound_clinic_level", ["clinic_id", "level", "received_at"], unique=False
        )
    op.create_table(
        "inbox_done",
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("ref", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("clinic_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_by", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.PrimaryKeyConstraint("kind", "ref"),
    )
    op.create_index("ix_inbox_done_clinic_at", "inbox_done", ["clinic_id", "done_at"])


def downgrade() -> None:
    op.drop_index("ix_inbox_done_clinic_at", table_name="inbox_done")
    op.drop_table("inbox_done")
    with op.batch_alter_table("inbound") as batch:
        batch.drop_index("ix_inbound_clinic_level")
        batch.drop_column("patient_id")
        batch.drop_column("message_id")
        batch.drop_column("level")
