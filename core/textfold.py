"""The one text-folding function: what triage keywords and the search index compare."""

from __future__ import annotations

import re
import unicodedata

# Letters of Bambara's alphabet that basic phones cannot type, and typographic apostrophes.
_FOLD_TABLE = str.maketrans(
    {"ɛ": "e", "ɔ": "o", "ɲ": "ny", "ŋ": "ng", "’": "'", "‘": "'", "`": "'", "´": "'"}
)
_WORD_RE = re.compile(r"[^\W_]+")


def fold(text: str) -> str:
    """Lower-case, drop accents, spell Bambara letters in ASCII, squeeze whitespace."""
    lowered = text.lower().translate(_FOLD_TABLE)
    decomposed = unicodedata.normalize("NFKD", lowered)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.split())


def folded_words(text: str) -> list[str]:
    """The words of ``fold(text)`` (letters and digits; punctuation separates), in order."""
    return _WORD_RE.findall(fold(text))
