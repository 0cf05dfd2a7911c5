"""tickets: alerts to a person (SLA escalations to the team lead and supervisors)

Revision ID: 0002_tickets
Revises: 0001
Create Date: 2026-11-28 09:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_tickets"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("recipient_user_id", sa.Integer(), nullable=True))
        batch_op.alter_column("alert_channel_id", existing_type=sa.Integer(), nullable=True)
        batch_op.create_foreign_key(
            batch_op.f("fk_alerts_recipient_user_id_users"),
            "users",
            ["recipient_user_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch_op.create_index(
            batch_op.f("ix_alerts_recipient_user_id"), ["recipient_user_id"], unique=False
        )
        batch_op.create_check_constraint(
            "has_recipient", "alert_channel_id IS NOT NULL OR recipient_user_id IS NOT NULL"
        )


def downgrade() -> None:
    op.execute("DELETE FROM alerts WHERE alert_channel_id IS NULL")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_constraint("has_recipient", type_="check")
        batch_op.drop_index(batch_op.f("ix_alerts_recipient_user_id"))
        batch_op.drop_constraint(
            batch_op.f("fk_alerts_recipient_user_id_users"), type_="foreignkey"
        )
        batch_op.alter_column("alert_channel_id", existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column("recipient_user_id")
