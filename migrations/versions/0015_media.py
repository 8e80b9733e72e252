"""photo check-ins: one media row per item of an inbound MMS, its cleaned bytes (contract §17)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _text(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    op.create_table(
        "media",
        sa.Column("id", _text(32), nullable=False),
        sa.Column("inbound_id", sa.Integer(), nullable=False),
        sa.Column("clinic_id", _text(64), nullable=True),
        sa.Column("patient_id", sa.Integer(), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("content_type", _text(100), nullable=False),
        sa.Column("state", _text(16), nullable=False),
        sa.Column("reason", _text(32), nullable=True),
        sa.Column("size", sa.Integer(), nullable=True),
        sa.Column("data", sa.LargeBinary(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", _text(64), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_media_inbound_id", "media", ["inbound_id"])
    op.create_index("ix_media_patient_id", "media", ["patient_id"])
    op.create_index("ix_media_state_due", "media", ["state", "due_at"])
    op.create_index("ix_media_received", "media", ["received_at"])


def downgrade() -> None:
    for name in ("ix_media_received", "ix_media_state_due", "ix_media_patient_id"):
        op.drop_index(name, table_name="media")
    op.drop_index("ix_media_inbound_id", table_name="media")
    op.drop_table("media")
