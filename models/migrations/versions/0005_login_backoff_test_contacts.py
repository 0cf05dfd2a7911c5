"""Login backoff per (account, address); contacts created by the phone simulator.

Revision ID: 0005_login_backoff
Revises: 0004_delivery_unknown
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_login_backoff"
down_revision: str | None = "0004_delivery_unknown"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "login_backoffs",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("account_key", sa.String(64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("blocked_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_backoffs")),
    )
    op.create_index(
        op.f("ix_login_backoffs_account_key"), "login_backoffs", ["account_key"], unique=False
    )
    op.create_index(
        op.f("ix_login_backoffs_last_failed_at"), "login_backoffs", ["last_failed_at"], unique=False
    )
    with op.batch_alter_table("contacts") as batch:
        batch.add_column(
            sa.Column("is_test", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("contacts") as batch:
        batch.drop_column("is_test")
    op.drop_index(op.f("ix_login_backoffs_last_failed_at"), table_name="login_backoffs")
    op.drop_index(op.f("ix_login_backoffs_account_key"), table_name="login_backoffs")
    op.drop_table("login_backoffs")
