"""erasure: the audit trail, a patient's erasure, the patient each stored event concerned
(contract §19)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-10
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = sqlmodel.sql.sqltypes.AutoString

# Every stored answer names its patient: a treatment's or an appointment's `patient_id`, or
# patient.updated's `patient.id`. Earlier events are given theirs from it.
_BACKFILL = {
    "sqlite": "COALESCE(json_extract(response, '$.treatment.patient_id'), "
    "json_extract(response, '$.appointment.patient_id'), "
    "json_extract(response, '$.patient.id'))",
    "postgresql": "COALESCE(response::json #>> '{treatment,patient_id}', "
    "response::json #>> '{appointment,patient_id}', response::json #>> '{patient,id}')",
}


def upgrade() -> None:
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("clinic_id", S(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", S(length=255), nullable=False),
        sa.Column("action", S(length=32), nullable=False),
        sa.Column("patient_id", S(length=128), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit", schema=None) as batch_op:
        batch_op.create_index("ix_audit_clinic_at", ["clinic_id", "at", "id"], unique=False)
        batch_op.create_index("ix_audit_at", ["at"], unique=False)  # retention prunes by age
    with op.batch_alter_table("patient", schema=None) as batch_op:
        batch_op.add_column(sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("erasure", sa.Text(), nullable=True))
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("patient_id", S(length=128), nullable=True))
        batch_op.create_index("ix_event_clinic_patient", ["clinic_id", "patient_id"], unique=False)
    dialect = op.get_bind().dialect.name
    if dialect in _BACKFILL:
        op.execute(
            f"UPDATE event SET patient_id = {_BACKFILL[dialect]} "
            "WHERE patient_id IS NULL AND response LIKE '{%'"
        )


def downgrade() -> None:
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.drop_index("ix_event_clinic_patient")
        batch_op.drop_column("patient_id")
    with op.batch_alter_table("patient", schema=None) as batch_op:
        batch_op.drop_column("erasure")
        batch_op.drop_column("erased_at")
    with op.batch_alter_table("audit", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_at")
        batch_op.drop_index("ix_audit_clinic_at")
    op.drop_table("audit")
