"""Per-language message catalogs for user-facing text (SMS, USSD, alerts).

Each package keeps its catalogs as flat JSON files (``fr.json``, ``bm.json``, ``en.json``) in
its own folder and builds one ``Catalog`` over it. A key missing in the requested language
falls back to French, the hotline's working language, so a partial Bambara catalog never
leaves a sender without an answer; a key missing in French too is a bug (KeyError).
"""

from __future__ import annotations

import json
from enum import StrEnum
from functools import cached_property
from pathlib import Path

# The same codes as ``models.enums.Language`` (core is below models, so it cannot import the
# enum; tests/core/test_layers.py proves the two agree).
FALLBACK_LANGUAGE = "fr"
LANGUAGES = ("fr", "bm", "en")


def normalize_language(language: str | StrEnum | None) -> str:
    """A catalog language for whatever the caller has (None, "FR", a Language member)."""
    value = (language.value if isinstance(language, StrEnum) else (language or "")).lower()
    return value if value in LANGUAGES else FALLBACK_LANGUAGE


class Catalog:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @cached_property
    def _entries(self) -> dict[str, dict[str, str]]:
        entries: dict[str, dict[str, str]] = {}
        for language in LANGUAGES:
            path = self.directory / f"{language}.json"
            entries[language] = (
                json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
            )
        return entries

    def keys(self) -> set[str]:
        return set(self._entries[FALLBACK_LANGUAGE])

    def entries(self, language: str | StrEnum | None) -> dict[str, str]:
        """The whole catalog of one language (for tests that check every text)."""
        return self._entries[normalize_language(language)]

    def has(self, key: str, language: str | StrEnum | None) -> bool:
        return key in self._entries[normalize_language(language)]

    def translate(self, key: str, language: str | StrEnum | None, **params: object) -> str:
        lang = normalize_language(language)
        template = self._entries[lang].get(key)
        if template is None:
            template = self._entries[FALLBACK_LANGUAGE][key]
        return template.format(**params) if params else template
