"""Logging set-up: one line per event, key=value pairs, never a phone number or a body."""

from __future__ import annotations

import logging
import sys

from core.settings import get_settings

SECURITY_LOGGER = "deme.security"


def configure_logging() -> None:
    root = logging.getLogger()
    if getattr(root, "_deme_configured", False):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root.addHandler(handler)
    root.setLevel(get_settings().log_level)
    root._deme_configured = True  # type: ignore[attr-defined]


def security_log() -> logging.Logger:
    return logging.getLogger(SECURITY_LOGGER)
