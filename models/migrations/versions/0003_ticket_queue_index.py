"""Index for the unfiltered queue (newest first, keyset pagination on created_at, id).

Revision ID: 0003_queue_index
Revises: 0002_tickets
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003_queue_index"
down_revision: str | None = "0002_tickets"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Without it the console's default queue sorts the whole table: ~850 ms at 1M tickets.
    op.create_index("ix_tickets_created_at_id", "tickets", ["created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_tickets_created_at_id", table_name="tickets")
