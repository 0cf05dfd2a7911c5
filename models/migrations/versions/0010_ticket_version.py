"""Two operators on one ticket: a version number for optimistic locking, and who has a ticket
open (presence).

Revision ID: 0010_ticket_version
Revises: 0009_ticket_source_message
Create Date: 2026-12-02

``tickets.version`` is bumped by every change of the work fields (status, priority,
category, team, assignee: ``tickets.workflow``); the console claims it with one conditional
``UPDATE … WHERE version = :seen``, atomic on PostgreSQL and SQLite alike, so a form rendered
before someone else's change is refused instead of silently undoing it. ``add_column`` with a
server default is SQLite's ``ALTER TABLE ADD COLUMN``: the table is not rebuilt (a rebuild
would cascade-delete ``ticket_events``, see 0004).

``ticket_viewers``: one row per (ticket, person) refreshed while the ticket page is open.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_ticket_version"
down_revision: str | None = "0009_ticket_source_message"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("tickets", sa.Column("version", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "ticket_viewers",
        sa.Column(
            "ticket_id",
            sa.Integer(),
            sa.ForeignKey("tickets.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_ticket_viewers_seen_at", "ticket_viewers", ["seen_at"])


def downgrade() -> None:
    op.drop_index("ix_ticket_viewers_seen_at", table_name="ticket_viewers")
    op.drop_table("ticket_viewers")
    # Plain ALTER TABLE on both (SQLite ≥ 3.35): a batch rebuild would cascade (see 0004).
    op.execute("ALTER TABLE tickets DROP COLUMN version")
