"""The operator console's queue: the default view's index and saved views per user.

Revision ID: 0013_console_views
Revises: 0012_dtm_flows
Create Date: 2026-12-02

``ix_tickets_open_due``: the default queue view ("open · mine + unassigned", by
first-response due time) walks this partial index in order and stops after one page; it
holds only open tickets, so it stays small on a million-ticket history. Partial indexes
exist on both PostgreSQL and SQLite (the same predicate, written literally).

``saved_views``: a name and the queue's query string, per user.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_console_views"
down_revision: str | None = "0012_dtm_flows"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN_STATUS_SQL = "status IN ('new', 'triaged', 'assigned', 'in_progress', 'waiting')"


def upgrade() -> None:
    op.create_index(
        "ix_tickets_open_due",
        "tickets",
        ["first_response_due_at", "id"],
        postgresql_where=sa.text(OPEN_STATUS_SQL),
        sqlite_where=sa.text(OPEN_STATUS_SQL),
    )
    op.create_table(
        "saved_views",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("query", sa.String(2000), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("user_id", "name", name="uq_saved_views_user_name"),
    )


def downgrade() -> None:
    op.drop_table("saved_views")
    op.drop_index("ix_tickets_open_due", table_name="tickets")
