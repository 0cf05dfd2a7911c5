"""Free text encrypted at rest: message bodies, ticket summaries/descriptions, notes, call
notes; the queue's blind search index.

Existing rows are converted in place, batch-wise (``BATCH`` rows per round trip, walking the
primary key), with the newest ``DEME_PII_KEY``; a value that already decrypts is left as it
is, so a re-run after an interruption is harmless. Downgrade decrypts.

Revision ID: 0007_encrypt_free_text
Revises: 0006_audit_ticket
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op

from core.crypto import DecryptionError, decrypt_text, encrypt_text
from models.tickets import search_index_for

revision: str = "0007_encrypt_free_text"
down_revision: str | None = "0006_audit_ticket"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 500
# (table, free-text columns) converted by this revision.
COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("messages", ("body",)),
    ("tickets", ("summary", "description")),
    ("ticket_events", ("body",)),
    ("calls", ("notes",)),
)


def _is_token(value: str) -> bool:
    try:
        decrypt_text(value)
    except (DecryptionError, ValueError, UnicodeError):
        return False
    return True


def _encrypt(value: str) -> str:
    return value if _is_token(value) else encrypt_text(value)


def _decrypt(value: str) -> str:
    return decrypt_text(value) if _is_token(value) else value


def _convert(table: str, columns: tuple[str, ...], change: Callable[[str], str]) -> None:
    connection = op.get_bind()
    meta = sa.table(table, sa.column("id", sa.Integer), *(sa.column(c, sa.Text) for c in columns))
    last_id = 0
    while True:
        rows = connection.execute(
            sa.select(meta.c.id, *(meta.c[c] for c in columns))
            .where(meta.c.id > last_id)
            .order_by(meta.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        last_id = rows[-1][0]
        for row in rows:
            values = {c: row[i + 1] for i, c in enumerate(columns) if row[i + 1] is not None}
            if values:
                connection.execute(
                    meta.update()
                    .where(meta.c.id == row[0])
                    .values({c: change(v) for c, v in values.items()})
                )


def _index_tickets() -> None:
    connection = op.get_bind()
    tickets = sa.table(
        "tickets",
        sa.column("id", sa.Integer),
        sa.column("summary", sa.Text),
        sa.column("description", sa.Text),
        sa.column("sensitive", sa.Boolean),
        sa.column("category", sa.String),
        sa.column("search_index", sa.Text),
    )
    last_id = 0
    while True:
        rows = connection.execute(
            sa.select(
                tickets.c.id,
                tickets.c.summary,
                tickets.c.description,
                tickets.c.sensitive,
                tickets.c.category,
            )
            .where(tickets.c.id > last_id)
            .order_by(tickets.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        last_id = rows[-1][0]
        for ident, summary, description, sensitive, category in rows:
            index = search_index_for(
                _decrypt(summary) if summary else None,
                _decrypt(description) if description else None,
                sensitive=sensitive,
                category=category,
            )
            if index is not None:
                connection.execute(
                    tickets.update().where(tickets.c.id == ident).values(search_index=index)
                )


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


# On SQLite the tickets table is NOT rebuilt (batch mode would): with foreign keys on, dropping
# the old table cascades to ticket_events and nulls messages/calls.ticket_id — data loss. SQLite
# does not enforce VARCHAR lengths, so only PostgreSQL needs the widening; ADD/DROP COLUMN are
# plain ALTER TABLE statements on both.
def upgrade() -> None:
    if not _sqlite():
        # A Fernet token is ~1.4× its UTF-8 text plus 57 bytes: no longer fits 255 characters.
        op.alter_column(
            "tickets",
            "summary",
            existing_type=sa.String(length=255),
            type_=sa.Text(),
            existing_nullable=True,
        )
    op.add_column("tickets", sa.Column("search_index", sa.Text(), nullable=True))
    for table, columns in COLUMNS:
        _convert(table, columns, _encrypt)
    _index_tickets()


def downgrade() -> None:
    for table, columns in COLUMNS:
        _convert(table, columns, _decrypt)
    if _sqlite():
        op.execute("ALTER TABLE tickets DROP COLUMN search_index")  # SQLite ≥ 3.35
        return
    op.drop_column("tickets", "search_index")
    op.alter_column(
        "tickets",
        "summary",
        existing_type=sa.Text(),
        type_=sa.String(length=255),
        existing_nullable=True,
    )
