"""The one text-folding function: what triage keywords and the search index compare."""

from __future__ import annotations

import re
import unicodedata

# The one table of Bambara's letters that basic phones cannot type, as people spell them in
# ASCII (lower case: every user folds case). The gazetteer's place names use it too; the Rasa
# project's own copy (bot/normalize.py, which runs in Rasa's Python and cannot import the
# platform) and the GSM-7 transliteration are checked against it by tests.
BAMBARA_LETTERS: dict[str, str] = {
    "ɛ": "e",
    "Ɛ": "e",
    "ɔ": "o",
    "Ɔ": "o",
    "ɲ": "ny",
    "Ɲ": "ny",
    "ŋ": "ng",
    "Ŋ": "ng",
}
# ... and typographic apostrophes.
_FOLD_TABLE = str.maketrans({**BAMBARA_LETTERS, "’": "'", "‘": "'", "`": "'", "´": "'"})
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
