"""Holds on recordings, and the store's version id of each object.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "recording_hold",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("recording_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=1000), nullable=False),
        sa.Column("review_by", sa.DateTime(timezone=True), nullable=False),
        sa.Column("placed_by", sa.String(length=200), nullable=False),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("released_by", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["recording_id"],
            ["recording.id"],
            name=op.f("fk_recording_hold_recording_id_recording"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recording_hold")),
    )
    with op.batch_alter_table("recording_hold", schema=None) as batch_op:
        batch_op.create_index(
            "ix_recording_hold_active", ["recording_id", "released_at"], unique=False
        )
    with op.batch_alter_table("stored_object", schema=None) as batch_op:
        batch_op.add_column(sa.Column("version_id", sa.String(length=1024), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("stored_object", schema=None) as batch_op:
        batch_op.drop_column("version_id")
    op.drop_table("recording_hold")
