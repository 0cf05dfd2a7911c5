"""Where the tests' own database, broker and var/ folder are, for the chosen deployment.

The suite runs against either deployment of the one product (``--deployment``, README
"Tests"):

- ``server`` (the default): PostgreSQL + Redis, as docker-compose runs it;
- ``embedded``: what `make run` starts on a bare machine — a SQLite file in the var folder
  and the embedded broker of ``core.celery_app.broker_options`` (no server at all).

The choice has to be known before any Deme module reads its settings, that is when
tests/conftest.py is imported — before pytest has parsed its command line — so it is read
here from the command line (``--deployment=embedded`` or ``--deployment embedded``) or from
``DEME_TEST_DEPLOYMENT``; tests/conftest.py registers the option and checks that pytest
parsed the same value.

Every value can be overridden (``DEME_TEST_DB``, ``DEME_TEST_REDIS_DB``,
``DEME_TEST_PG_ADMIN_URL``, ``DEME_TEST_REDIS_URL``) so parallel runs never clobber each other.
"""

from __future__ import annotations

import os
import sys

from support import PROJECT_ROOT

DEPLOYMENTS = ("server", "embedded")


def _deployment_from_command_line(argv: list[str]) -> str | None:
    for index, arg in enumerate(argv):
        if arg.startswith("--deployment="):
            return arg.split("=", 1)[1]
        if arg == "--deployment" and index + 1 < len(argv):
            return argv[index + 1]
    return None


DEPLOYMENT = (
    _deployment_from_command_line(sys.argv[1:])
    or os.environ.get("DEME_TEST_DEPLOYMENT")
    or "server"
)
if DEPLOYMENT not in DEPLOYMENTS:
    raise SystemExit(f"--deployment must be one of {', '.join(DEPLOYMENTS)}, not {DEPLOYMENT!r}")
EMBEDDED = DEPLOYMENT == "embedded"

TEST_DB = os.environ.get("DEME_TEST_DB", "deme_test")
PG_ADMIN_URL = os.environ.get(
    "DEME_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
PG_TEST_DATABASE_URL = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{TEST_DB}"
TEST_REDIS_URL = os.environ.get(
    "DEME_TEST_REDIS_URL", f"redis://127.0.0.1:6379/{os.environ.get('DEME_TEST_REDIS_DB', '15')}"
)
# One folder per database name and deployment: the embedded deployment keeps its database
# and its broker in it, exactly where `make run` keeps them in var/.
TEST_VAR_DIR = PROJECT_ROOT / "var" / (f"test-{TEST_DB}" + ("-embedded" if EMBEDDED else ""))
SQLITE_TEST_DATABASE_URL = f"sqlite:///{TEST_VAR_DIR / 'deme.sqlite3'}"
TEST_DATABASE_URL = SQLITE_TEST_DATABASE_URL if EMBEDDED else PG_TEST_DATABASE_URL


def embedded_broker_url(db: int = 0) -> str:
    """The embedded broker's URL (a Valkey server on a unix socket under the session's var
    folder, ``core.broker``), as ``deme run`` hands it to its children in ``DEME_REDIS_URL``."""
    from core.broker import EmbeddedBroker

    url = EmbeddedBroker(TEST_VAR_DIR / "broker").url
    return url if db == 0 else f"{url}?db={db}"


def private_broker_env(name: str, redis_db: str) -> dict[str, str]:
    """Environment for processes (web, worker) that must share a broker of their own — not the
    session's, whose worker would take their tasks — on the same database: another database
    number of the same Redis (server stack) or of the same embedded broker."""
    if EMBEDDED:
        return {"DEME_REDIS_URL": embedded_broker_url(int(redis_db))}
    return {"DEME_REDIS_URL": TEST_REDIS_URL.rsplit("/", 1)[0] + "/" + redis_db}
