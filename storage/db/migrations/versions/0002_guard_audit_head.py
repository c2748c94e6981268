"""Guard the audit trail against wiping: no TRUNCATE, and a head that only moves forward.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # Row triggers do not fire on TRUNCATE; without this one the application's own
        # role could empty the trail and reset the head, and verify would find 0 events.
        op.execute(
            """
            CREATE TRIGGER audit_event_no_truncate
            BEFORE TRUNCATE ON audit_event
            FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only()
            """
        )
        op.execute(
            """
            CREATE FUNCTION audit_head_forward_only() RETURNS trigger AS $$
            BEGIN
                IF TG_OP <> 'UPDATE' OR NEW.seq <= OLD.seq THEN
                    RAISE EXCEPTION 'the audit head only moves forward';
                END IF;
                RETURN NEW;
            END;
            $$ LANGUAGE plpgsql
            """
        )
        op.execute(
            """
            CREATE TRIGGER audit_head_forward_only
            BEFORE UPDATE OR DELETE ON audit_head
            FOR EACH ROW EXECUTE FUNCTION audit_head_forward_only()
            """
        )
        op.execute(
            """
            CREATE TRIGGER audit_head_no_truncate
            BEFORE TRUNCATE ON audit_head
            FOR EACH STATEMENT EXECUTE FUNCTION audit_head_forward_only()
            """
        )
    else:
        op.execute(
            """
            CREATE TRIGGER audit_head_forward_only
            BEFORE UPDATE ON audit_head WHEN NEW.seq <= OLD.seq
            BEGIN SELECT RAISE(ABORT, 'the audit head only moves forward'); END
            """
        )
        op.execute(
            """
            CREATE TRIGGER audit_head_no_delete
            BEFORE DELETE ON audit_head
            BEGIN SELECT RAISE(ABORT, 'the audit head only moves forward'); END
            """
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_head_no_truncate ON audit_head")
        op.execute("DROP TRIGGER IF EXISTS audit_head_forward_only ON audit_head")
        op.execute("DROP FUNCTION IF EXISTS audit_head_forward_only()")
        op.execute("DROP TRIGGER IF EXISTS audit_event_no_truncate ON audit_event")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_head_no_delete")
        op.execute("DROP TRIGGER IF EXISTS audit_head_forward_only")
