"""Screen text for the USSD menu, one JSON catalog per language (``catalogs/{fr,bm,en}.json``).

Catalogs are read once per process: a hop only does dictionary look-ups and ``str.format``.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from models.enums import Language

CATALOG_DIR = Path(__file__).resolve().parent / "catalogs"
LANGUAGES: tuple[Language, ...] = (Language.FRENCH, Language.BAMBARA, Language.ENGLISH)
# Before the caller has chosen a language (the language screen itself is trilingual).
DEFAULT_LANGUAGE = Language.FRENCH


@cache
def catalog(language: Language) -> dict[str, str]:
    path = CATALOG_DIR / f"{language.value}.json"
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return {str(key): str(value) for key, value in loaded.items()}


def translate(key: str, language: Language | None, **params: object) -> str:
    """The ``key`` text in ``language`` with ``{params}`` filled in.

    A key missing from a catalog is a programming error caught by the catalog tests; at run time
    it falls back to French rather than failing a caller's session.
    """
    entries = catalog(language or DEFAULT_LANGUAGE)
    text = entries.get(key)
    if text is None:
        text = catalog(DEFAULT_LANGUAGE)[key]
    return text.format(**params) if params else text
