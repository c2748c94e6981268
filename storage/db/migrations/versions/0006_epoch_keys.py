"""Retention epochs and key rotations: what is known about epoch keys, never the keys.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "epoch_key",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("epoch", sa.String(length=16), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("root_kek_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("destroyed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_epoch_key")),
    )
    with op.batch_alter_table("epoch_key", schema=None) as batch_op:
        batch_op.create_index("ix_epoch_key_epoch", ["epoch", "generation"], unique=False)
    op.create_table(
        "key_rotation",
        sa.Column("generation", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("root_kek_id", sa.String(length=64), nullable=False),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rotated_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("generation", name=op.f("pk_key_rotation")),
    )
    with op.batch_alter_table("data_key", schema=None) as batch_op:
        batch_op.create_index("ix_data_key_kek_id", ["kek_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("data_key", schema=None) as batch_op:
        batch_op.drop_index("ix_data_key_kek_id")
    op.drop_table("key_rotation")
    with op.batch_alter_table("epoch_key", schema=None) as batch_op:
        batch_op.drop_index("ix_epoch_key_epoch")
    op.drop_table("epoch_key")
