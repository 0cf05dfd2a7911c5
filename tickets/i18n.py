"""Message catalogs of the tickets domain: ``translate(key, language, **params)``.

Catalogs are flat JSON files per language under ``tickets/catalogs``. A key missing in the
requested language falls back to French (the working language of the hotline), so a partial
Bambara catalog never leaves a sender without an answer. A key missing in French too is a bug
and raises ``KeyError``.

``gateway.i18n`` has the same shape but is bound to the gateway's own catalog folder; the
domain's texts (status SMS, alerts, routing reasons) live with the domain instead of in
another package's files.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

CATALOG_DIR = Path(__file__).resolve().parent / "catalogs"
FALLBACK_LANGUAGE = "fr"
LANGUAGES = ("fr", "bm", "en")


@lru_cache(maxsize=len(LANGUAGES))
def catalog(language: str) -> dict[str, str]:
    path = CATALOG_DIR / f"{language}.json"
    if not path.is_file():
        return {}
    data: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
    return data


def normalize_language(language: str | None) -> str:
    """A catalog language for whatever the caller has (None, "FR", a Language enum)."""
    value = str(language or FALLBACK_LANGUAGE).lower()
    return value if value in LANGUAGES else FALLBACK_LANGUAGE


def translate(key: str, language: str | None, /, **params: object) -> str:
    lang = normalize_language(language)
    template = catalog(lang).get(key)
    if template is None:
        template = catalog(FALLBACK_LANGUAGE).get(key)
    if template is None:
        raise KeyError(f"message {key!r} is missing from the {FALLBACK_LANGUAGE} catalog")
    return template.format(**params)


def has_key(key: str, language: str | None) -> bool:
    return key in catalog(normalize_language(language))
