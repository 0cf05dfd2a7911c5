"""User-facing SMS text of the gateway (opt-out/opt-in confirmations), per language.

Catalogs are JSON files under ``gateway/catalogs`` (``fr``, ``bm``, ``en``). Bambara is
written in the ASCII spelling people use on basic phones, and every string stays GSM-7 and
within one SMS (tests check both), so a confirmation never costs more than one segment.
"""

from __future__ import annotations

from pathlib import Path

from core.i18n import Catalog

CATALOG_DIR = Path(__file__).resolve().parent / "catalogs"
CATALOG = Catalog(CATALOG_DIR)
translate = CATALOG.translate
