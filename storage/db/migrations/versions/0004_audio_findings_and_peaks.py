"""What probing found about the audio, and waveform peaks per recording.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("recording", schema=None) as batch_op:
        batch_op.add_column(sa.Column("declared_duration_s", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("audio_problems", sa.JSON(), nullable=True))
    op.create_table(
        "recording_peaks",
        sa.Column("recording_id", sa.Uuid(), nullable=False),
        sa.Column("per_second", sa.Float(), nullable=False),
        sa.Column("channels", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["recording_id"],
            ["recording.id"],
            name=op.f("fk_recording_peaks_recording_id_recording"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("recording_id", name=op.f("pk_recording_peaks")),
    )


def downgrade() -> None:
    op.drop_table("recording_peaks")
    with op.batch_alter_table("recording", schema=None) as batch_op:
        batch_op.drop_column("audio_problems")
        batch_op.drop_column("declared_duration_s")
