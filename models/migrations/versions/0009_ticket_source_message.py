"""One ticket per inbound message: ``tickets.source_message_id``, unique (issue 14).

Revision ID: 0009_ticket_source_message
Revises: 0008_bulkheads
Create Date: 2026-12-02

The bot's action (through ``/api/v1``) and the keyword fallback (after a Rasa timeout) could
both create a ticket for one message. The message id is now the idempotency key of ticket
creation; the unique index is what makes it hold when both run at once. NULL for tickets
with no message (USSD, console, calls): a unique index allows any number of NULLs on
PostgreSQL and SQLite. A plain integer, no foreign key (``messages.ticket_id`` points the
other way; a circular foreign key would complicate retention's deletes).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_ticket_source_message"
down_revision: str | None = "0008_bulkheads"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("source_message_id", sa.Integer(), nullable=True))
    op.create_index("uq_tickets_source_message_id", "tickets", ["source_message_id"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_tickets_source_message_id", table_name="tickets")
    # Not in a batch: on SQLite a batch drop copies the table, and dropping the old copy
    # with foreign keys on would cascade to the ticket events. SQLite ≥ 3.35 drops a plain
    # column in place, as PostgreSQL does.
    op.drop_column("tickets", "source_message_id")
