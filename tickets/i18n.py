"""Message catalogs of the tickets domain (sender notifications, alerts, routing reasons).

Flat JSON files per language under ``tickets/catalogs``; ``core.i18n.Catalog`` falls back to
French, the hotline's working language, so a partial Bambara catalog never leaves a sender
without an answer.
"""

from __future__ import annotations

from pathlib import Path

from core.i18n import Catalog, normalize_language

CATALOG_DIR = Path(__file__).resolve().parent / "catalogs"
CATALOG = Catalog(CATALOG_DIR)
translate = CATALOG.translate

__all__ = ["CATALOG", "CATALOG_DIR", "normalize_language", "translate"]
