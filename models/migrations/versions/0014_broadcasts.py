"""Broadcasts: an SMS in fr/en/bm to a selection, one row per recipient.

Revision ID: 0014_broadcasts
Revises: 0013_console_views
Create Date: 2026-12-02

``broadcast_recipients`` is unique per (broadcast, contact): the sending task writes a
recipient's message and marks the row in one transaction, so a re-run after a crash never
writes a second message for the same person.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_broadcasts"
down_revision: str | None = "0013_console_views"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _dt(name: str, nullable: bool = True) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "broadcasts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("text_fr", sa.Text(), nullable=True),
        sa.Column("text_en", sa.Text(), nullable=True),
        sa.Column("text_bm", sa.Text(), nullable=True),
        sa.Column("criteria", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column(
            "created_by_id",
            sa.Integer(),
            sa.ForeignKey("users.id", name="fk_broadcasts_created_by_id_users"),
            nullable=True,
        ),
        _dt("created_at", nullable=False),
        _dt("scheduled_at"),
        _dt("started_at"),
        _dt("finished_at"),
        sa.Column("recipients_count", sa.Integer(), nullable=False),
        sa.Column("skipped_count", sa.Integer(), nullable=False),
        sa.Column("parts_total", sa.Integer(), nullable=False),
        sa.Column("sent_count", sa.Integer(), nullable=False),
        sa.Column("failed_count", sa.Integer(), nullable=False),
    )
    op.create_index("ix_broadcasts_status", "broadcasts", ["status"])
    op.create_table(
        "broadcast_recipients",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "broadcast_id",
            sa.Integer(),
            sa.ForeignKey(
                "broadcasts.id",
                ondelete="CASCADE",
                name="fk_broadcast_recipients_broadcast_id_broadcasts",
            ),
            nullable=False,
        ),
        sa.Column(
            "contact_id",
            sa.Integer(),
            sa.ForeignKey(
                "contacts.id",
                ondelete="SET NULL",
                name="fk_broadcast_recipients_contact_id_contacts",
            ),
            nullable=True,
        ),
        sa.Column(
            "channel_id",
            sa.Integer(),
            sa.ForeignKey("channels.id", name="fk_broadcast_recipients_channel_id_channels"),
            nullable=True,
        ),
        sa.Column("language", sa.String(8), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("parts", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(40), nullable=True),
        sa.Column(
            "message_id",
            sa.Integer(),
            sa.ForeignKey(
                "messages.id",
                ondelete="SET NULL",
                name="fk_broadcast_recipients_message_id_messages",
            ),
            nullable=True,
        ),
        _dt("sent_at"),
        sa.UniqueConstraint(
            "broadcast_id", "contact_id", name="uq_broadcast_recipients_broadcast_id_contact_id"
        ),
    )
    op.create_index(
        "ix_broadcast_recipients_status",
        "broadcast_recipients",
        ["broadcast_id", "status", "id"],
    )
    op.create_index("ix_broadcast_recipients_contact_id", "broadcast_recipients", ["contact_id"])
    op.create_index("ix_broadcast_recipients_message_id", "broadcast_recipients", ["message_id"])


def downgrade() -> None:
    op.drop_table("broadcast_recipients")
    op.drop_table("broadcasts")
