"""Per-recording key shares: the digest and store version of each recording's share.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Both nullable: existing recordings have no share and keep working as they were.
    with op.batch_alter_table("recording", schema=None) as batch_op:
        batch_op.add_column(sa.Column("key_share_digest", sa.LargeBinary(), nullable=True))
        batch_op.add_column(
            sa.Column("key_share_version_id", sa.String(length=1024), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("recording", schema=None) as batch_op:
        batch_op.drop_column("key_share_version_id")
        batch_op.drop_column("key_share_digest")
