"""Every kind of feedback, and PSEA (issue 15): ``tickets.kind`` and ``teams.handles_psea``.

Revision ID: 0011_ticket_kind
Revises: 0010_ticket_version
Create Date: 2026-12-02

``tickets.kind`` (need, complaint, positive_feedback, rumour, information_request, psea;
existing rows are needs) decides, for ``psea``, who may see a ticket at all;
``teams.handles_psea`` marks the PSEA focal-point team(s), the only ones PSEA tickets are
routed to. Both are plain ``ALTER TABLE ADD COLUMN`` with a server default on PostgreSQL and
SQLite alike: a batch rebuild of ``tickets`` on SQLite would cascade-delete ``ticket_events``
(see 0004). The new status ``awaiting_approval`` needs no DDL (statuses are VARCHAR).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_ticket_kind"
down_revision: str | None = "0010_ticket_version"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "tickets",
        sa.Column("kind", sa.String(length=24), nullable=False, server_default="need"),
    )
    op.create_index("ix_tickets_kind", "tickets", ["kind"])
    op.add_column(
        "teams",
        sa.Column("handles_psea", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    op.drop_index("ix_tickets_kind", table_name="tickets")
    # Plain ALTER TABLE on both (SQLite ≥ 3.35): a batch rebuild would cascade (see 0004).
    op.execute("ALTER TABLE teams DROP COLUMN handles_psea")
    op.execute("ALTER TABLE tickets DROP COLUMN kind")
