"""The ticket an audit line concerns, so the audit page filters it like the ticket itself.

Revision ID: 0006_audit_ticket
Revises: 0005_login_backoff
Create Date: 2026-12-01

A plain integer, no foreign key: the audit log is append-only (UPDATE and DELETE refused by a
trigger), so an ``ON DELETE SET NULL`` could never run. ``add_column`` in a batch keeps
SQLite's ``ALTER TABLE ADD COLUMN`` (no table copy), so the append-only triggers stay.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_audit_ticket"
down_revision: str | None = "0005_login_backoff"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The same guards as revision 0001 (kept here so this file stands alone).
_SQLITE_AUDIT_GUARDS = (
    """CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
       BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END""",
    """CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
       BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END""",
)


def upgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("ticket_id", sa.Integer(), nullable=True))
    op.create_index("ix_audit_log_ticket_id", "audit_log", ["ticket_id"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_ticket_id", table_name="audit_log")
    if op.get_bind().dialect.name == "sqlite":
        # Dropping a column copies the table on SQLite: recreate the append-only triggers.
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("ticket_id")
    if op.get_bind().dialect.name == "sqlite":
        for statement in _SQLITE_AUDIT_GUARDS:
            op.execute(statement)
