"""Subject access requests: cases with their statutory deadline, and the recordings each covers.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subject_access_case",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=False),
        sa.Column("received", sa.Date(), nullable=False),
        sa.Column("deadline", sa.Date(), nullable=False),
        sa.Column("reason", sa.String(length=1000), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("criteria", sa.JSON(), nullable=False),
        sa.Column("opened_by", sa.String(length=200), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("extended_by", sa.String(length=200), nullable=True),
        sa.Column("extended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("extension_reason", sa.String(length=1000), nullable=True),
        sa.Column("closed_by", sa.String(length=200), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("close_reason", sa.String(length=1000), nullable=True),
        sa.Column("exports", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subject_access_case")),
        sa.UniqueConstraint("reference", name=op.f("uq_subject_access_case_reference")),
    )
    with op.batch_alter_table("subject_access_case", schema=None) as batch_op:
        batch_op.create_index("ix_subject_access_case_open", ["state", "deadline"], unique=False)
    op.create_table(
        "subject_access_item",
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("recording_id", sa.Uuid(), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("redaction", sa.JSON(), nullable=True),
        sa.Column("redaction_by", sa.String(length=200), nullable=True),
        sa.Column("redaction_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["subject_access_case.id"],
            name=op.f("fk_subject_access_item_case_id_subject_access_case"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("case_id", "recording_id", name=op.f("pk_subject_access_item")),
    )
    with op.batch_alter_table("subject_access_item", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_subject_access_item_recording_id"), ["recording_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("subject_access_item", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_subject_access_item_recording_id"))
    op.drop_table("subject_access_item")
    with op.batch_alter_table("subject_access_case", schema=None) as batch_op:
        batch_op.drop_index("ix_subject_access_case_open")
    op.drop_table("subject_access_case")
