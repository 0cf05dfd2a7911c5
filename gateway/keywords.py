"""Opt-out / opt-in keywords: the whole message, case- and accent-insensitive.

The lists live in ``gateway/data/keywords.json`` (English, French, Bambara) so field staff
can extend them without touching code. "Whole message" means a message *is* the keyword
(after trimming spaces and surrounding punctuation): "stop." and "  Arrêt !" opt out, "stop
the shelling" does not — a person describing their situation must never be silenced by it.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from gateway.gsm7 import to_gsm7

KEYWORDS_FILE = Path(__file__).resolve().parent / "data" / "keywords.json"

_TRIM = re.compile(r"^[\W_]+|[\W_]+$")
_SPACES = re.compile(r"[\s\-_.]+")


class KeywordAction(StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"


@dataclass(frozen=True, slots=True)
class KeywordMatch:
    action: KeywordAction
    keyword: str
    language: str


def normalize_keyword(text: str) -> str:
    """Upper-case ASCII with single spaces: "  arrêt ! " → "ARRET", "a dabila" → "A DABILA"."""
    text = to_gsm7(text)  # ɛ→e, ɲ→ny, typographic quotes → ASCII
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = _TRIM.sub("", text.strip())
    return _SPACES.sub(" ", text).strip().upper()


@lru_cache(maxsize=1)
def _table() -> dict[str, KeywordMatch]:
    raw = json.loads(KEYWORDS_FILE.read_text(encoding="utf-8"))
    table: dict[str, KeywordMatch] = {}
    for action in KeywordAction:
        for word, language in raw[action.value].items():
            key = normalize_keyword(word)
            table[key] = KeywordMatch(action, key, language)
            # "OPT OUT" and "OPTOUT", "A DABILA" and "ADABILA": people drop the space.
            table.setdefault(key.replace(" ", ""), KeywordMatch(action, key, language))
    return table


def match_keyword(body: str | None) -> KeywordMatch | None:
    if not body or len(body) > 40:  # a keyword is short; skip the work for real messages
        return None
    key = normalize_keyword(body)
    return _table().get(key) or _table().get(key.replace(" ", ""))
