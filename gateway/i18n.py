"""User-facing SMS text of the gateway (opt-out/opt-in confirmations), per language.

Catalogs are JSON files under ``gateway/catalogs`` (``fr``, ``bm``, ``en``). Bambara is
written in the ASCII spelling people use on basic phones, and every string stays GSM-7 and
within one SMS (tests check both), so a confirmation never costs more than one segment.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from models.enums import Language

CATALOG_DIR = Path(__file__).resolve().parent / "catalogs"
DEFAULT_LANGUAGE = Language.FRENCH  # Mali's official working language for written SMS
LANGUAGES = tuple(Language)


@lru_cache(maxsize=8)
def catalog(language: str) -> dict[str, str]:
    path = CATALOG_DIR / f"{language}.json"
    if not path.is_file():
        return {}
    data: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
    return data


def translate(key: str, language: str | Language | None, **params: object) -> str:
    """The text for ``key`` in ``language``, falling back to French then English.

    Raises KeyError when no catalog has the key: a missing string is a bug to see in tests,
    not something to paper over with the key itself in an SMS.
    """
    wanted = str(language) if language else str(DEFAULT_LANGUAGE)
    for candidate in (wanted, str(DEFAULT_LANGUAGE), str(Language.ENGLISH)):
        text = catalog(candidate).get(key)
        if text is not None:
            return text.format_map(params) if params else text
    raise KeyError(f"no catalog has the key {key!r}")
