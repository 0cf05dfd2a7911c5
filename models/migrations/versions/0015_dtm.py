"""Flow monitoring by SMS: enumerators' registered phones, and how each movement was entered.

Revision ID: 0015_dtm
Revises: 0014_broadcasts
Create Date: 2026-12-02

``enumerator_phones``: a console user's phone, as the contact that number belongs to (numbers
stay encrypted in ``contacts``); only these phones may send a ``FLOW`` SMS. ``movements``
gains ``channel`` (console, sms, ussd, api) and ``enumerator_contact_id`` (the phone a count
came from), added with plain ``ALTER TABLE ADD COLUMN`` on SQLite as in 0012 (no ``ON DELETE``:
contacts are never deleted, erasure blanks them, and SQLite would not report it back).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_dtm"
down_revision: str | None = "0014_broadcasts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FK_NAME = "fk_movements_enumerator_contact_id_contacts"


def upgrade() -> None:
    op.create_table(
        "enumerator_phones",
        sa.Column(
            "contact_id",
            sa.Integer(),
            sa.ForeignKey("contacts.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "user_id",
            sa.Integer(),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_enumerator_phones_user_id", "enumerator_phones", ["user_id"])
    op.add_column("movements", sa.Column("channel", sa.String(8), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.add_column(
            "movements",
            sa.Column(
                "enumerator_contact_id",
                sa.Integer(),
                sa.ForeignKey("contacts.id", name=FK_NAME),
                nullable=True,
            ),
        )
    else:
        # Alembic refuses a foreign key in SQLite's ADD COLUMN; SQLite itself takes it inline.
        op.execute(
            "ALTER TABLE movements ADD COLUMN enumerator_contact_id INTEGER "
            "REFERENCES contacts (id)"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint(FK_NAME, "movements")
    op.execute("ALTER TABLE movements DROP COLUMN enumerator_contact_id")
    op.execute("ALTER TABLE movements DROP COLUMN channel")
    op.drop_index("ix_enumerator_phones_user_id", table_name="enumerator_phones")
    op.drop_table("enumerator_phones")
