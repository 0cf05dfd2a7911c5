"""Outbound sends of unknown outcome: when the provider was last asked about one
(``reconciled_at``) and when an operator resent it (``resent_at``).

Revision ID: 0004_delivery_unknown
Revises: 0003_queue_index
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_delivery_unknown"
down_revision: str | None = "0003_queue_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("reconciled_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("resent_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("resent_at")
        batch.drop_column("reconciled_at")
