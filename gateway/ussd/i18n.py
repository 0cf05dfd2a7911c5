"""Screen text for the USSD menu, one JSON catalog per language (``catalogs/{fr,bm,en}.json``).

Catalogs are read once per process: a hop only does dictionary look-ups and ``str.format``.
"""

from __future__ import annotations

from pathlib import Path

from core.i18n import Catalog
from models.enums import Language

CATALOG_DIR = Path(__file__).resolve().parent / "catalogs"
CATALOG = Catalog(CATALOG_DIR)
LANGUAGES: tuple[Language, ...] = (Language.FRENCH, Language.BAMBARA, Language.ENGLISH)
# Before the caller has chosen a language (the language screen itself is trilingual).
DEFAULT_LANGUAGE = Language.FRENCH

translate = CATALOG.translate
catalog = CATALOG.entries
