"""Benchmark: preparing a 100,000-recipient broadcast (issue 16), with its baseline in the
same run.

    .venv/bin/python bench/broadcast.py --deployment pg|embedded [--contacts 100000]

pg: its own database ``deme_bench_broadcast`` on ``DEME_BENCH_PG_ADMIN_URL`` (dropped and
re-created); embedded: a SQLite file under ``var/bench-broadcast``. Migrates, seeds one SMS
channel, bulk-inserts the contacts (fr/bm/en, 1% opted out, 0.5% erased, phones encrypted
and hashed as the app does; not timed), then times:

- **prepare**: ``gateway.broadcasts.prepare`` for everyone in the three languages — the
  selection, exclusions (opted out, erased, flood-limited), per-person text and parts, and
  the bulk insert of one recipient row each — committed. Target <= 30 s.
- **floor** (baseline): only reading the same contacts' ids and languages (the least any
  preparation must do).
- **naive** (baseline): the obvious per-person loop on the first 2,000 contacts —
  ``pick_channel`` per person, ``prepare_body`` per person, one ORM row and flush each —
  extrapolated to the whole list.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BENCH_DB = "deme_bench_broadcast"
ADMIN_URL = os.environ.get(
    "DEME_BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
VAR_DIR = ROOT / "var" / "bench-broadcast"
NAIVE_SAMPLE = 2000


def _configure(deployment: str) -> str:
    if deployment == "pg":
        url = ADMIN_URL.rsplit("/", 1)[0] + f"/{BENCH_DB}"
    else:
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        (VAR_DIR / "deme.sqlite3").unlink(missing_ok=True)
        url = f"sqlite:///{VAR_DIR / 'deme.sqlite3'}"
    os.environ.update(
        {
            "DEME_ENV": "test",
            "DEME_DATABASE_URL": url,
            "DEME_PUBLIC_URL": "https://deme.bench",
            "DEME_LOG_LEVEL": "WARNING",
            "DEME_VAR_DIR": str(VAR_DIR),
        }
    )
    os.environ.pop("DEME_REDIS_URL", None)
    if deployment == "pg":
        from sqlalchemy import create_engine, text

        admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{BENCH_DB}"'))
        admin.dispose()
    return url


def _seed(count: int) -> None:
    from sqlalchemy import insert

    from core.crypto import lookup_hash
    from core.db import get_sessionmaker
    from models.base import utcnow
    from models.channels import Channel
    from models.contacts import Contact, new_public_id
    from models.enums import ChannelType

    now = utcnow()
    with get_sessionmaker()() as session:
        session.add(Channel(name="aggregator", type=ChannelType.HTTP, config={}))
        rows = []
        for n in range(count):
            phone = f"+2237{n:07d}"
            erased = n % 200 == 7
            rows.append(
                {
                    "public_id": new_public_id(),
                    "phone": None if erased else phone,
                    "phone_hash": None if erased else lookup_hash(phone),
                    "language": ("fr", "bm", "en")[n % 3],
                    "opted_out_at": now if n % 100 == 3 else None,
                    "erased_at": now if erased else None,
                    "is_test": False,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        for start in range(0, count, 10000):
            session.execute(insert(Contact), rows[start : start + 10000])
        session.commit()


TEXTS = {
    "fr": "Distribution de kits d'hygiène demain à 9h au site de Sénou. Apportez votre carte.",
    "en": "Hygiene kit distribution tomorrow 9am at the Senou site. Bring your card.",
    "bm": "Sini sɔgɔma 9h, sanuya minanw bɛna tila Senou site la. Aw ka aw ka karti ta.",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deployment", choices=("pg", "embedded"), required=True)
    parser.add_argument("--contacts", type=int, default=100_000)
    args = parser.parse_args()
    url = _configure(args.deployment)

    from alembic import command

    from deme.cli import alembic_config

    command.upgrade(alembic_config(), "head")
    started = time.perf_counter()
    _seed(args.contacts)
    seeded = time.perf_counter() - started

    from sqlalchemy import func, select

    from core.db import get_sessionmaker
    from gateway import broadcasts as bc
    from gateway.outbound import pick_channel, prepare_body
    from models.broadcasts import Broadcast, BroadcastRecipient, BroadcastStatus, RecipientStatus
    from models.contacts import Contact
    from models.enums import Language

    selection = bc.Selection(languages=tuple(bc.LANGUAGES))
    texts = bc.clean_texts(TEXTS)
    with get_sessionmaker()() as session:
        started = time.perf_counter()
        session.execute(select(Contact.id, Contact.language)).all()
        floor = time.perf_counter() - started

    with get_sessionmaker()() as session:
        started = time.perf_counter()
        broadcast = bc.prepare(session, selection, texts, name="bench", created_by_id=None)
        session.commit()
        prepared = time.perf_counter() - started
        broadcast_id = broadcast.id
        queued = session.scalar(
            select(func.count()).where(
                BroadcastRecipient.broadcast_id == broadcast_id,
                BroadcastRecipient.status == RecipientStatus.QUEUED,
            )
        )
        parts = broadcast.parts_total
        skipped = broadcast.skipped_count

    with get_sessionmaker()() as session:
        naive = Broadcast(name="naive", criteria={}, status=BroadcastStatus.DRAFT)
        for counter in ("recipients_count", "skipped_count", "parts_total"):
            setattr(naive, counter, 0)
        naive.sent_count = naive.failed_count = 0
        session.add(naive)
        session.flush()
        started = time.perf_counter()
        contacts = session.scalars(
            select(Contact)
            .where(Contact.language.in_(list(Language)))
            .order_by(Contact.id)
            .limit(NAIVE_SAMPLE)
        ).all()
        for contact in contacts:
            if contact.opted_out_at or contact.erased_at:
                continue
            channel = pick_channel(session, contact)
            _used, text = bc.text_for(texts, contact.language)
            _body, info, _ = prepare_body(text, channel)
            session.add(
                BroadcastRecipient(
                    broadcast_id=naive.id,
                    contact_id=contact.id,
                    channel_id=channel.id,
                    language=contact.language,
                    text=text,
                    parts=info.segments,
                    status=RecipientStatus.QUEUED,
                )
            )
            session.flush()
        session.commit()
        naive_time = (time.perf_counter() - started) * args.contacts / max(1, len(contacts))

    target = 30.0
    print(f"deployment: {args.deployment} ({url.split('://')[0]})")
    print(f"contacts seeded: {args.contacts} in {seeded:.1f} s (not timed in the target)")
    print(f"recipients queued: {queued}, skipped: {skipped}, SMS parts: {parts}")
    print(f"prepare (selection, text, parts, insert, commit): {prepared:.2f} s", end=" ")
    print(f"(target <= {target:.0f} s)")
    print(f"baseline floor (read ids and languages only): {floor:.2f} s")
    print(f"baseline naive per-person loop (extrapolated from {NAIVE_SAMPLE}): {naive_time:.1f} s")
    print("PASS" if prepared <= target else "FAIL")


if __name__ == "__main__":
    main()
