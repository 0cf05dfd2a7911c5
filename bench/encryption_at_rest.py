"""Benchmark: the cost of encrypting free text at rest (issue 11, door 5).

    .venv/bin/python bench/encryption_at_rest.py [--tickets 20000] [--runs 50] [--postgres]

One run, side by side:
- CPU per message: Fernet encrypt / decrypt of a 160-character SMS (µs), and the blind-index
  words of it (HMAC per folded word);
- on N tickets (1 in 5 protection), the queue's newest 50 with their texts and a text search,
  encrypted (the real columns and ``ops_console.queries.filter_conditions``) against a
  plaintext copy of the same rows (the old ILIKE search), for a supervisor (blind index) and a
  protection officer (blind index + decrypting the newest protection candidates).
Medians and ratios. Uses a throw-away SQLite file, or ``deme_bench_encryption`` on PostgreSQL.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BENCH_DB = "deme_bench_encryption"
ADMIN_URL = os.environ.get(
    "DEME_BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
SMS = (
    "Bonjour, nous sommes 7 personnes déplacées de Ménaka au site de Sévaré, pas d'eau "
    "potable depuis trois jours, les enfants ont la diarrhée, merci de nous aider vite"
)[:160]
WORDS = ("forage", "eau", "fievre", "abri", "tente", "latrine", "vivres", "savon", "moustiquaire")


def median_us(fn: Callable[[], object], runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e6)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="deme-bench-enc-")
    if args.postgres:
        url = ADMIN_URL.rsplit("/", 1)[0] + f"/{BENCH_DB}"
    else:
        url = f"sqlite:///{tmp}/bench.sqlite3"
    os.environ.update(
        {
            "DEME_ENV": "test",
            "DEME_DATABASE_URL": url,
            "DEME_LOG_LEVEL": "WARNING",
            "DEME_VAR_DIR": tmp,
        }
    )
    os.environ.pop("DEME_REDIS_URL", None)

    from sqlalchemy import (
        Boolean,
        Column,
        DateTime,
        Index,
        Integer,
        MetaData,
        Table,
        Text,
        create_engine,
        insert,
        select,
        text,
    )

    if args.postgres:
        admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{BENCH_DB}"'))

    from alembic import command

    from core.crypto import decrypt_text, encrypt_text, search_hash
    from core.db import get_sessionmaker
    from core.textfold import folded_words
    from deme.cli import alembic_config
    from models.base import utcnow
    from models.enums import TicketCategory, TicketSource, UserRole
    from models.tickets import Ticket
    from models.users import User
    from ops_console.permissions import Viewer
    from ops_console.queries import TicketFilter, filter_conditions

    command.upgrade(alembic_config(), "head")  # type: ignore[arg-type]

    runs = args.runs
    token = encrypt_text(SMS)
    print(f"CPU per 160-character message ({runs * 20} runs, median):")
    enc = median_us(lambda: encrypt_text(SMS), runs * 20)
    dec = median_us(lambda: decrypt_text(token), runs * 20)
    idx = median_us(lambda: {search_hash(w) for w in folded_words(SMS)}, runs * 20)
    print(f"  encrypt {enc:7.1f} µs   decrypt {dec:7.1f} µs   blind-index words {idx:7.1f} µs")

    session = get_sessionmaker()()
    plain = Table(
        "bench_plain_tickets",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("sensitive", Boolean),
        Column("created_at", DateTime(timezone=True)),
        Column("summary", Text),
        Column("description", Text),
        Index("ix_bench_plain_created_id", "created_at", "id"),
    )
    plain.create(session.connection())
    start = time.perf_counter()
    rows = []
    now = utcnow()
    for i in range(args.tickets):
        sensitive = i % 5 == 3
        word = WORDS[i % len(WORDS)]
        description = f"{word} {SMS[: 60 + i % 90]} {i}"
        rows.append(
            {
                "reference": f"T-{i:06d}",
                "category": TicketCategory.PROTECTION if sensitive else TicketCategory.WASH,
                "sensitive": sensitive,
                "source": TicketSource.SMS,
                "summary": description[:120],
                "description": description,
                "created_at": now,
                "updated_at": now,
            }
        )
    for offset in range(0, len(rows), 1000):
        batch = rows[offset : offset + 1000]
        session.add_all(Ticket(**row) for row in batch)  # ORM: encryption + blind index
        session.flush()
    session.execute(
        insert(plain).from_select(
            ["id", "sensitive", "created_at"],
            select(Ticket.id, Ticket.sensitive, Ticket.created_at),
        )
    )
    for ident, row in zip(
        session.scalars(select(Ticket.id).order_by(Ticket.id)), rows, strict=True
    ):
        session.execute(
            plain.update()
            .where(plain.c.id == ident)
            .values(summary=row["summary"], description=row["description"])
        )
    supervisor = User(username="bench-sup", display_name="s", role=UserRole.SUPERVISOR)
    officer = User(username="bench-po", display_name="p", role=UserRole.PROTECTION_OFFICER)
    session.add_all([supervisor, officer])
    session.commit()
    seconds = time.perf_counter() - start
    print(f"seeded {args.tickets} tickets in {seconds:.1f} s ({url.split(':')[0]})")

    viewers = {
        "supervisor": Viewer(supervisor, frozenset()),
        "protection": Viewer(officer, frozenset()),
    }

    def queue_encrypted(viewer: Viewer, q: str | None) -> list[object]:
        conditions = filter_conditions(session, TicketFilter(q=q), viewer)
        statement = (
            select(Ticket.id, Ticket.summary, Ticket.description)
            .where(*conditions)
            .order_by(Ticket.created_at.desc(), Ticket.id.desc())
            .limit(50)
        )
        return list(session.execute(statement))

    def queue_plain(viewer: Viewer, q: str | None) -> list[object]:
        statement = select(plain.c.id, plain.c.summary, plain.c.description)
        if not viewer.sees_protection:
            statement = statement.where(plain.c.sensitive.is_(False))
        if q:
            pattern = f"%{q}%"
            statement = statement.where(
                plain.c.summary.ilike(pattern) | plain.c.description.ilike(pattern)
            )
        return list(
            session.execute(
                statement.order_by(plain.c.created_at.desc(), plain.c.id.desc()).limit(50)
            )
        )

    print(f"\nqueue, newest 50 with texts, median of {runs} (ms):")
    print(f"  {'case':44} {'plaintext':>10} {'encrypted':>10} {'ratio':>7}")
    for label, viewer_name, q in (
        ("no search", "supervisor", None),
        ("no search", "protection", None),
        ("search, common word 'forage'", "supervisor", "forage"),
        ("search, common word 'forage'", "protection", "forage"),
        ("search, word in no ticket", "supervisor", "zzzzzz"),
        ("search, word in no ticket", "protection", "zzzzzz"),
    ):
        viewer = viewers[viewer_name]
        a = median_us(lambda v=viewer, q=q: queue_plain(v, q), runs) / 1000
        b = median_us(lambda v=viewer, q=q: queue_encrypted(v, q), runs) / 1000
        print(f"  {label + ' (' + viewer_name + ')':44} {a:10.2f} {b:10.2f} {b / a:6.2f}×")
        session.rollback()
    session.close()
    if args.postgres:
        from core.db import reset_engine_cache

        reset_engine_cache()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
