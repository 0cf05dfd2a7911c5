"""Where the tests' own PostgreSQL database, Redis database and var/ folder are.

Every value can be overridden (``DEME_TEST_DB``, ``DEME_TEST_REDIS_DB``,
``DEME_TEST_PG_ADMIN_URL``, ``DEME_TEST_REDIS_URL``) so parallel runs never clobber each other.
"""

from __future__ import annotations

import os

from support import PROJECT_ROOT

TEST_DB = os.environ.get("DEME_TEST_DB", "deme_test")
PG_ADMIN_URL = os.environ.get(
    "DEME_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
TEST_DATABASE_URL = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{TEST_DB}"
TEST_REDIS_URL = os.environ.get(
    "DEME_TEST_REDIS_URL", f"redis://127.0.0.1:6379/{os.environ.get('DEME_TEST_REDIS_DB', '15')}"
)
TEST_VAR_DIR = PROJECT_ROOT / "var" / f"test-{TEST_DB}"
