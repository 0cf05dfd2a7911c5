"""Displacement tracking: household status, merges and further phones; population movements
(flow monitoring and households' own moves).

Revision ID: 0012_dtm_flows
Revises: 0011_ticket_kind
Create Date: 2026-12-02

``households`` gains two nullable columns with ``add_column`` (SQLite's plain
``ALTER TABLE ADD COLUMN``: no rebuild, which would cascade, see 0004). A household's further
phones are links to contacts (``household_contacts``): numbers stay encrypted in ``contacts``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_dtm_flows"
down_revision: str | None = "0011_ticket_kind"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("households", sa.Column("status", sa.String(16), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.add_column(
            "households",
            sa.Column(
                "merged_into_id",
                sa.Integer(),
                sa.ForeignKey("households.id", name="fk_households_merged_into_id_households"),
                nullable=True,
            ),
        )
    else:
        # Alembic refuses a foreign key in SQLite's ADD COLUMN; SQLite itself takes it inline.
        op.execute(
            "ALTER TABLE households ADD COLUMN merged_into_id INTEGER REFERENCES households (id)"
        )
    op.create_index("ix_households_merged_into_id", "households", ["merged_into_id"])
    op.create_table(
        "household_contacts",
        sa.Column(
            "household_id",
            sa.Integer(),
            sa.ForeignKey("households.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "contact_id",
            sa.Integer(),
            sa.ForeignKey("contacts.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_household_contacts_contact_id", "household_contacts", ["contact_id"])
    op.create_table(
        "movements",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("observed_on", sa.Date(), nullable=False),
        sa.Column("point_place_id", sa.Integer(), sa.ForeignKey("places.id"), nullable=True),
        sa.Column("point_name", sa.String(120), nullable=True),
        sa.Column("origin_place_id", sa.Integer(), sa.ForeignKey("places.id"), nullable=True),
        sa.Column("destination_place_id", sa.Integer(), sa.ForeignKey("places.id"), nullable=False),
        sa.Column("people", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(16), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column(
            "household_id",
            sa.Integer(),
            sa.ForeignKey("households.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("recorded_by_user_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=True),
        sa.Column("is_test", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    for column in (
        "source",
        "observed_on",
        "point_place_id",
        "origin_place_id",
        "destination_place_id",
        "household_id",
    ):
        op.create_index(f"ix_movements_{column}", "movements", [column])


def downgrade() -> None:
    op.drop_table("movements")
    op.drop_table("household_contacts")
    op.drop_index("ix_households_merged_into_id", table_name="households")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("fk_households_merged_into_id_households", "households")
    # Plain ALTER TABLE on both (SQLite ≥ 3.35): a batch rebuild would cascade (see 0004).
    op.execute("ALTER TABLE households DROP COLUMN merged_into_id")
    op.execute("ALTER TABLE households DROP COLUMN status")
