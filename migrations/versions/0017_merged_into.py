"""merged_into: the lead message a message went out inside, as one text (docs/merging.md)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("message") as batch:
        batch.add_column(
            sa.Column("merged_into", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True)
        )
        batch.create_index("ix_message_merged_into", ["merged_into"])


def downgrade() -> None:
    with op.batch_alter_table("message") as batch:
        batch.drop_index("ix_message_merged_into")
        batch.drop_column("merged_into")
