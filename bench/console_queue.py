"""Benchmark: the console's queue page and dashboard over 1,000,000 tickets in PostgreSQL.

    .venv/bin/python bench/console_queue.py [--tickets 1000000] [--runs 40] [--keep]

Creates (and, unless --keep, drops) its own database ``deme_bench_console``, migrates it,
seeds the gazetteer and teams, bulk-inserts tickets with ``generate_series`` (a few seconds),
then times full page requests through the real app in-process (routing, auth, queries,
template rendering): p50/p95 per filter. Targets: queue p95 <= 100 ms, dashboard <= 300 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BENCH_DB = "deme_bench_console"
ADMIN_URL = os.environ.get(
    "DEME_BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
BENCH_URL = ADMIN_URL.rsplit("/", 1)[0] + f"/{BENCH_DB}"

os.environ.update(
    {
        "DEME_ENV": "test",
        "DEME_DATABASE_URL": BENCH_URL,
        "DEME_PUBLIC_URL": "https://deme.bench",
        "DEME_LOG_LEVEL": "WARNING",
        "DEME_VAR_DIR": str(ROOT / "var" / "bench-console"),
    }
)
os.environ.pop("DEME_REDIS_URL", None)

from sqlalchemy import create_engine, text  # noqa: E402

SEED_SQL = """
INSERT INTO tickets (reference, category, priority, status, sensitive, source, language,
    summary, description, search_index, needs_review, place_id, team_id, contact_id,
    sla_paused_seconds, first_response_due_at, resolution_due_at, first_responded_at,
    created_at, updated_at)
SELECT
    -- A real reference shape (T- and five letters of the reference alphabet), unique per g.
    'T-' || (SELECT string_agg(substr('234679ACDEFGHJKMNPQRTWXYZ',
                                      1 + (g / (25 ^ k)::int) % 25, 1), '' ORDER BY k DESC)
             FROM generate_series(0, 4) AS k),
    (ARRAY['health','wash','shelter_nfi','protection','other'])[1 + (g * 7) % 5],
    (ARRAY['low','normal','normal','high','urgent'])[1 + (g * 13) % 5],
    -- A hotline closes what it handles: older than 30 days is resolved or closed, the last
    -- 30 days hold every status (about 40,000 open tickets out of the million).
    CASE WHEN c.created > now() - interval '30 days'
         THEN (ARRAY['new','triaged','assigned','in_progress','waiting','resolved','closed',
                     'closed','closed','resolved'])[1 + (g * 11) % 10]
         ELSE (ARRAY['resolved','closed','closed'])[1 + (g * 11) % 3] END,
    (g * 7) % 5 = 3,
    (ARRAY['sms','sms','sms','ussd','call','missed_call'])[1 + (g * 5) % 6],
    (ARRAY['fr','bm','en'])[1 + g % 3],
    -- Free text is encrypted at rest: a few distinct texts, encrypted and indexed by the app.
    (CAST(:summaries AS text[]))[1 + g % :texts],
    (CAST(:descriptions AS text[]))[1 + g % :texts],
    CASE WHEN (g * 7) % 5 = 3 THEN NULL ELSE (CAST(:indexes AS text[]))[1 + g % :texts] END,
    false,
    places.ids[1 + (g * 31) % array_length(places.ids, 1)],
    teams.ids[1 + (g * 17) % array_length(teams.ids, 1)],
    NULL,
    0,
    c.created + interval '4 hours',
    c.created + interval '3 days',
    CASE WHEN g % 3 = 0 THEN c.created + interval '1 hour' END,
    c.created,
    c.created
FROM generate_series(1, :count) AS g,
     LATERAL (SELECT now() - (g::float / :count) * interval '365 days' AS created) AS c,
     (SELECT array_agg(id) AS ids FROM places WHERE kind <> 'country') AS places,
     (SELECT array_agg(id) AS ids FROM teams) AS teams
"""


def recreate_database() -> None:
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :name AND pid <> pg_backend_pid()"
            ),
            {"name": BENCH_DB},
        )
        connection.execute(text(f'DROP DATABASE IF EXISTS "{BENCH_DB}"'))
        connection.execute(text(f'CREATE DATABASE "{BENCH_DB}"'))
    admin.dispose()


def drop_database() -> None:
    from core.db import reset_engine_cache

    reset_engine_cache()
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)'))
    admin.dispose()


def migrate() -> None:
    from alembic import command
    from alembic.config import Config

    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "models" / "migrations"))
    config.attributes["database_url"] = BENCH_URL
    config.attributes["configure_logging"] = False
    command.upgrade(config, "head")


# Not in the migrations yet (models/ belongs to the foundation): without it the unfiltered
# queue sorts a million rows (p50 ~850 ms). Proposed to the lead as
# Index("ix_tickets_created_at_id", "created_at", "id") on Ticket plus a migration.
PROPOSED_INDEXES = (
    "CREATE INDEX IF NOT EXISTS ix_tickets_created_at_id ON tickets (created_at, id)",
)


DISTINCT_TEXTS = 64


def encrypted_texts() -> dict[str, object]:
    """Summaries and descriptions as the app stores them (Fernet tokens) with their blind
    index: the SQL seed picks one per ticket (encrypting a million in Python would take
    minutes; a token decrypts the same whichever row holds it)."""
    from core.crypto import encrypt_text
    from models.tickets import search_index_for

    summaries, descriptions, indexes = [], [], []
    for n in range(DISTINCT_TEXTS):
        summary = f"Rapport {n}"
        description = f"Message de test numéro {n} au sujet de l'eau et de la santé"
        summaries.append(encrypt_text(summary))
        descriptions.append(encrypt_text(description))
        indexes.append(search_index_for(summary, description, sensitive=False, category="wash"))
    return {
        "summaries": summaries,
        "descriptions": descriptions,
        "indexes": indexes,
        "texts": DISTINCT_TEXTS,
    }


def seed(count: int) -> float:
    from core.db import get_sessionmaker
    from deme.seed import seed_places, seed_teams_and_rules
    from tickets.contacts import get_or_create_contact

    with get_sessionmaker()() as session:
        seed_places(session, lambda _m: None)
        seed_teams_and_rules(session, lambda _m: None)
        session.commit()
        started = time.perf_counter()
        session.execute(text(SEED_SQL), {"count": count, **encrypted_texts()})
        # A handful of real contacts so the phone filter has something to find.
        contact = get_or_create_contact(session, "+22376123456")
        session.execute(
            text("UPDATE tickets SET contact_id = :c WHERE id % 100000 = 1"), {"c": contact.id}
        )
        session.commit()
        elapsed = time.perf_counter() - started
    with create_engine(BENCH_URL, isolation_level="AUTOCOMMIT").connect() as connection:
        connection.execute(text("VACUUM ANALYZE"))
    return elapsed


def add_proposed_indexes() -> None:
    with create_engine(BENCH_URL, isolation_level="AUTOCOMMIT").connect() as connection:
        for statement in PROPOSED_INDEXES:
            connection.execute(text(statement))
        connection.execute(text("ANALYZE tickets"))


def timed(client: object, url: str, runs: int) -> tuple[float, float, int]:
    samples = []
    size = 0
    for index in range(runs + 3):
        started = time.perf_counter()
        response = client.get(url)  # type: ignore[attr-defined]
        elapsed = (time.perf_counter() - started) * 1000
        assert response.status_code == 200, (url, response.status_code, response.text[:300])
        size = len(response.content)
        if index >= 3:  # warm-up: first requests load templates and fill caches
            samples.append(elapsed)
    samples.sort()
    p95 = samples[min(len(samples) - 1, round(0.95 * len(samples)) - 1)]
    return statistics.median(samples), p95, size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--reuse", action="store_true", help="time a database kept by an earlier --keep run"
    )
    parser.add_argument(
        "--without-proposed-indexes",
        action="store_true",
        help="measure the schema as migrated today (no ix_tickets_created_at_id)",
    )
    args = parser.parse_args()

    if not args.reuse:
        print(f"database {BENCH_DB}: creating and migrating…", flush=True)
        recreate_database()
        migrate()
        print(f"seeding {args.tickets:,} tickets…", flush=True)
        seconds = seed(args.tickets)
        print(f"  inserted in {seconds:.1f} s", flush=True)
    if not args.without_proposed_indexes:
        add_proposed_indexes()

    import re

    from fastapi.testclient import TestClient

    from core.db import get_sessionmaker
    from deme.app import create_app
    from models.enums import UserRole
    from ops_console.auth import create_user

    with get_sessionmaker()() as session:
        exists = session.execute(text("SELECT 1 FROM users WHERE username = 'bench'")).first()
        if exists is None:  # --reuse keeps the user of the earlier run
            create_user(
                session,
                username="bench",
                role=UserRole.OPERATOR,
                password="queue-measuring-passphrase",
            )
        team_id = session.execute(text("SELECT id FROM teams ORDER BY id LIMIT 1")).scalar_one()
        some_reference = session.execute(
            # Ticket 424242 at a million; the middle one in a smaller run.
            text(
                "SELECT reference FROM tickets WHERE id >= "
                "LEAST(424242, (SELECT max(id) FROM tickets) / 2) ORDER BY id LIMIT 1"
            )
        ).scalar_one()
        session.commit()

    client = TestClient(create_app(), base_url="https://deme.bench")
    login_page = client.get("/login").text
    csrf = re.search(r'name="csrf_token" value="([0-9a-f]+)"', login_page)
    assert csrf is not None
    response = client.post(
        "/login",
        data={
            "username": "bench",
            "password": "queue-measuring-passphrase",
            "csrf_token": csrf.group(1),
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    first_page = client.get("/queue").text
    cursor = re.search(r"cursor=([A-Za-z0-9_-]+)", first_page)
    assert cursor is not None

    from ops_console.forms import filter_query

    cases = [
        # The default view (issue 13): open · mine + unassigned, by first-response due
        # time, on the partial index ix_tickets_open_due.
        ("queue: default view (open, mine + unassigned, by due)", "/queue"),
        ("queue: every ticket, newest first", "/queue?view=custom"),
        ("queue: default view, as a link", "/queue?status=open&assignee=mine_or_none&sort=due"),
        ("queue: status=new", "/queue?status=new"),
        ("queue: health in Gao region (ML07)", "/queue?category=health&place=ML07"),
        ("queue: cercle + priority", "/queue?place=ML0701&priority=urgent"),
        ("queue: team + open status", f"/queue?team={team_id}&status=in_progress"),
        ("queue: SLA breached", "/queue?sla=breached"),
        ("queue: channel + dates", "/queue?source=call&from=2026-01-01&to=2026-03-31"),
        # The phone filter is posted; the queue URL carries the opaque token it redirects to.
        ("queue: sender phone", "/queue?" + filter_query({"phone": "76123456"})),
        ("queue: reference search", f"/queue?q={some_reference}"),
        ("queue: default view, next page (keyset)", f"/queue?cursor={cursor.group(1)}"),
        ("queue: text search (common word)", "/queue?q=eau"),
        ("queue: text search (rare word)*", "/queue?q=introuvable"),
        ("dashboard", "/dashboard"),
    ]
    print(f"\n{'page':42} {'p50 ms':>8} {'p95 ms':>8} {'KB':>6}")
    results = {}
    for label, url in cases:
        runs = max(10, args.runs // 4) if label == "dashboard" else args.runs
        p50, p95, size = timed(client, url, runs)
        results[label] = (p50, p95)
        print(f"{label:42} {p50:8.1f} {p95:8.1f} {size / 1024:6.1f}", flush=True)
    client.close()
    # * a word found in no ticket scans every description: needs a pg_trgm index (proposed).
    queue_p95 = max(
        p95
        for label, (_p50, p95) in results.items()
        if label.startswith("queue") and "*" not in label
    )
    dashboard_p95 = results["dashboard"][1]
    print(
        f"\nworst queue p95 {queue_p95:.1f} ms (target 100), "
        f"dashboard p95 {dashboard_p95:.1f} ms (target 300)"
    )
    if not args.keep:
        drop_database()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
