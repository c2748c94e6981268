"""Initial schema: recordings, referrals, stored objects, data keys and the audit chain.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_event",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("recording_id", sa.Uuid(), nullable=True),
        sa.Column("purpose", sa.String(length=32), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.Column("details_sha256", sa.LargeBinary(length=32), nullable=False),
        sa.Column("leaf", sa.LargeBinary(length=32), nullable=False),
        sa.Column("chain", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_event")),
    )
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.create_index("ix_audit_event_actor", ["actor"], unique=False)
        batch_op.create_index("ix_audit_event_recording", ["recording_id"], unique=False)

    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("chain", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    op.create_table(
        "recording",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("source_recording_id", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("direction", sa.String(length=16), nullable=True),
        sa.Column("from_number", sa.String(length=64), nullable=True),
        sa.Column("to_number", sa.String(length=64), nullable=True),
        sa.Column("agent", sa.String(length=128), nullable=True),
        sa.Column("team", sa.String(length=128), nullable=True),
        sa.Column("extra", sa.JSON(), nullable=True),
        sa.Column("container", sa.String(length=32), nullable=True),
        sa.Column("codec", sa.String(length=32), nullable=True),
        sa.Column("sample_rate", sa.Integer(), nullable=True),
        sa.Column("channels", sa.Integer(), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("retention_deadline", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recording")),
        sa.UniqueConstraint("source", "source_recording_id", name="uq_recording_source_id"),
    )
    with op.batch_alter_table("recording", schema=None) as batch_op:
        batch_op.create_index(
            "ix_recording_deadline", ["state", "retention_deadline"], unique=False
        )
        batch_op.create_index("ix_recording_team_started", ["team", "started_at"], unique=False)

    op.create_table(
        "referral",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referral")),
        sa.UniqueConstraint("reference", name=op.f("uq_referral_reference")),
    )
    op.create_table(
        "recording_referral",
        sa.Column("recording_id", sa.Uuid(), nullable=False),
        sa.Column("referral_id", sa.Integer(), nullable=False),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("linked_by", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["recording_id"],
            ["recording.id"],
            name=op.f("fk_recording_referral_recording_id_recording"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["referral.id"],
            name=op.f("fk_recording_referral_referral_id_referral"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("recording_id", "referral_id", name=op.f("pk_recording_referral")),
    )
    op.create_table(
        "stored_object",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("recording_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("object_key", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=64), nullable=False),
        sa.Column("plaintext_size", sa.BigInteger(), nullable=False),
        sa.Column("plaintext_sha256", sa.String(length=64), nullable=False),
        sa.Column("ciphertext_size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["recording_id"],
            ["recording.id"],
            name=op.f("fk_stored_object_recording_id_recording"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stored_object")),
        sa.UniqueConstraint("object_key", name=op.f("uq_stored_object_object_key")),
    )
    with op.batch_alter_table("stored_object", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_stored_object_recording_id"), ["recording_id"], unique=False
        )

    op.create_table(
        "data_key",
        sa.Column("object_id", sa.Uuid(), nullable=False),
        sa.Column("kek_id", sa.String(length=64), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["object_id"],
            ["stored_object.id"],
            name=op.f("fk_data_key_object_id_stored_object"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("object_id", name=op.f("pk_data_key")),
    )
    # The chain starts from 32 zero bytes at seq 0; appends lock and advance this row.
    op.bulk_insert(
        sa.table(
            "audit_head",
            sa.column("id", sa.Integer()),
            sa.column("seq", sa.BigInteger()),
            sa.column("chain", sa.LargeBinary()),
        ),
        [{"id": 1, "seq": 0, "chain": bytes(32)}],
    )
    _forbid_audit_rewrites()


def downgrade() -> None:
    _allow_audit_rewrites()
    op.drop_table("data_key")
    with op.batch_alter_table("stored_object", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_stored_object_recording_id"))

    op.drop_table("stored_object")
    op.drop_table("recording_referral")
    op.drop_table("referral")
    with op.batch_alter_table("recording", schema=None) as batch_op:
        batch_op.drop_index("ix_recording_team_started")
        batch_op.drop_index("ix_recording_deadline")

    op.drop_table("recording")
    op.drop_table("audit_head")
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_event_recording")
        batch_op.drop_index("ix_audit_event_actor")

    op.drop_table("audit_event")


def _forbid_audit_rewrites() -> None:
    """Make audit_event append-only inside the database too.

    The hash chain detects tampering after the fact; the triggers stop the application's
    own connection from rewriting history by accident or through an injection.
    """
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION audit_event_append_only() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION 'audit events are append-only';
            END;
            $$ LANGUAGE plpgsql
            """
        )
        op.execute(
            """
            CREATE TRIGGER audit_event_append_only
            BEFORE UPDATE OR DELETE ON audit_event
            FOR EACH ROW EXECUTE FUNCTION audit_event_append_only()
            """
        )
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"""
                CREATE TRIGGER audit_event_no_{verb.lower()}
                BEFORE {verb} ON audit_event
                BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END
                """
            )


def _allow_audit_rewrites() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_event_append_only ON audit_event")
        op.execute("DROP FUNCTION IF EXISTS audit_event_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_event_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_event_no_delete")
