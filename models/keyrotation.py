"""Re-encrypting everything with the newest ``DEME_PII_KEY`` and re-keying the lookup hashes.

Procedure (README, "Key rotation"): put the new key first in ``DEME_PII_KEY`` (old keys after
it), restart, run ``deme rotate-keys``, then drop the old keys. Every encrypted column found
in the models' metadata (``EncryptedText``/``EncryptedJSON``) is rotated; the keyed hashes
derived from the first key — ``contacts.phone_hash`` and ``tickets.search_index`` — are
recomputed from the decrypted values. It runs in the caller's transaction (one commit: the
hashes change all at once, so no lookup ever sees half of them re-keyed); rows are read in
batches, so memory stays flat.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core.crypto import (
    EncryptedJSON,
    EncryptedText,
    decrypt_text,
    is_current_token,
    lookup_hash,
    rotate_token,
)

BATCH = 500


def encrypted_columns() -> list[tuple[str, str]]:
    """(table, column) of every column stored encrypted, from the models' metadata."""
    import models

    found: list[tuple[str, str]] = []
    for table in models.Base.metadata.sorted_tables:
        for column in table.columns:
            if isinstance(column.type, EncryptedText | EncryptedJSON):
                found.append((table.name, column.name))
    return found


def _raw_table(name: str, *columns: str) -> sa.TableClause:
    # Plain Text columns: the stored tokens as they are, no TypeDecorator in the way.
    return sa.table(name, sa.column("id", sa.Integer), *(sa.column(c, sa.Text) for c in columns))


def _batches(session: Session, table: sa.TableClause, *columns: str) -> Iterator[list[Any]]:
    last_id = 0
    while True:
        rows = session.execute(
            sa.select(table.c.id, *(table.c[c] for c in columns))
            .where(table.c.id > last_id)
            .order_by(table.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        last_id = rows[-1][0]
        yield list(rows)


def rotate_keys(session: Session) -> dict[str, int]:
    """Rotate every encrypted value and lookup hash; counts per table.column (flushes)."""
    from models.tickets import search_index_for

    counts: dict[str, int] = {}
    for table_name, column in encrypted_columns():
        table = _raw_table(table_name, column)
        rotated = 0
        for rows in _batches(session, table, column):
            for ident, token in rows:
                if token is None or is_current_token(token):
                    continue
                session.execute(
                    table.update().where(table.c.id == ident).values({column: rotate_token(token)})
                )
                rotated += 1
        counts[f"{table_name}.{column}"] = rotated

    contacts = _raw_table("contacts", "phone", "phone_hash")
    rehashed = 0
    for rows in _batches(session, contacts, "phone"):
        for ident, token in rows:
            if token is not None:
                session.execute(
                    contacts.update()
                    .where(contacts.c.id == ident)
                    .values(phone_hash=lookup_hash(decrypt_text(token)))
                )
                rehashed += 1
    counts["contacts.phone_hash"] = rehashed

    tickets = sa.table(
        "tickets",
        sa.column("id", sa.Integer),
        sa.column("summary", sa.Text),
        sa.column("description", sa.Text),
        sa.column("sensitive", sa.Boolean),
        sa.column("category", sa.String),
        sa.column("search_index", sa.Text),
    )
    reindexed = 0
    for rows in _batches(session, tickets, "summary", "description", "sensitive", "category"):
        for ident, summary, description, sensitive, category in rows:
            index = search_index_for(
                decrypt_text(summary) if summary else None,
                decrypt_text(description) if description else None,
                sensitive=sensitive,
                category=category,
            )
            session.execute(
                tickets.update().where(tickets.c.id == ident).values(search_index=index)
            )
            reindexed += 1
    counts["tickets.search_index"] = reindexed
    session.flush()
    return counts
