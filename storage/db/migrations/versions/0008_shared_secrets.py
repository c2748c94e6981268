"""Secrets replicas share, and the append-only list of receipt-signing public keys.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shared_secret",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("kek_id", sa.String(length=64), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_shared_secret")),
    )
    op.create_table(
        "receipt_key",
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("public_pem", sa.String(length=1000), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_receipt_key")),
    )
    # A receipt must verify forever: the public keys are added to, never changed or removed.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION receipt_key_append_only() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION 'receipt keys are append-only';
            END;
            $$ LANGUAGE plpgsql
            """
        )
        op.execute(
            """
            CREATE TRIGGER receipt_key_append_only
            BEFORE UPDATE OR DELETE ON receipt_key
            FOR EACH ROW EXECUTE FUNCTION receipt_key_append_only()
            """
        )
        # Row triggers do not fire on TRUNCATE.
        op.execute(
            """
            CREATE TRIGGER receipt_key_no_truncate
            BEFORE TRUNCATE ON receipt_key
            FOR EACH STATEMENT EXECUTE FUNCTION receipt_key_append_only()
            """
        )
    else:
        for operation in ("UPDATE", "DELETE"):
            op.execute(
                f"""
                CREATE TRIGGER receipt_key_no_{operation.lower()}
                BEFORE {operation} ON receipt_key
                BEGIN SELECT RAISE(ABORT, 'receipt keys are append-only'); END
                """
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS receipt_key_no_truncate ON receipt_key")
        op.execute("DROP TRIGGER IF EXISTS receipt_key_append_only ON receipt_key")
        op.execute("DROP FUNCTION IF EXISTS receipt_key_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS receipt_key_no_update")
        op.execute("DROP TRIGGER IF EXISTS receipt_key_no_delete")
    op.drop_table("receipt_key")
    op.drop_table("shared_secret")
