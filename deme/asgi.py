"""ASGI entry point for uvicorn: ``uvicorn deme.asgi:app``."""

from __future__ import annotations

import sys

from core.settings import SettingsError

try:
    from deme.app import create_app

    app = create_app()
except SettingsError as exc:  # a clear message naming the variable, not a stack trace
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(2)
