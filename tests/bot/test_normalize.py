"""bot/normalize.py is shared by training data, the Rasa channel and the fallback: it must run
on the platform's Python without rasa, and be idempotent."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot.normalize import (  # noqa: E402
    detect_language,
    guess_language,
    normalize,
    parse_household_size,
)


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("Nous sommes 7 à Sévaré", "nous sommes 7 a sevare"),
        ("ji tɛ an fɛ", "ji te an fe"),
        ("ɲinini", "nyinini"),
        (
            "SVP ns avons bcp de malades dpuis lundi",
            "svp nous avons beaucoup de malades depuis lundi",
        ),
        ("ya pa d'eau", "il y a pas d eau"),
        ("l’eau", "l eau"),
        ("aideeeez", "aideez"),
        ("7pers", "7 personnes"),
        ("/restart", "restart"),
        ('/request_health{"place":"Gao"}', "request health place : gao"),
        ("T-7K2Q9 ou en est", "t-7k2q9 ou en est"),
        ("", ""),
    ],
)
def test_normalize(raw: str, expected: str) -> None:
    assert normalize(raw) == expected
    assert normalize(normalize(raw)) == normalize(raw)
    assert not normalize(raw).startswith("/")


@pytest.mark.parametrize(
    "text,size",
    [
        ("7", 7),
        ("sept", 7),
        ("wolonwula", 7),
        ("seven", 7),
        ("vingt-et-un", 21),
        ("quatre-vingt-dix-neuf", 99),
        ("soixante dix", 70),
        ("mugan ni duuru", 25),
        ("tan ni kelen", 11),
        ("twenty one", 21),
        ("0", None),
        ("100", None),
        ("rien", None),
    ],
)
def test_parse_household_size(text: str, size: int | None) -> None:
    assert parse_household_size(text) == size


def test_language_detection() -> None:
    assert detect_language("ji te yen an be Gao") == "bm"
    assert detect_language("pas d eau ici") == "fr"
    assert detect_language("no water here") == "en"
    assert guess_language("7") is None
    assert detect_language("7", default="en") == "en"


def test_the_bots_bambara_letters_are_the_platforms() -> None:
    """bot/normalize.py keeps its own copy of the letter table (Rasa's Python cannot import
    the platform): it must spell every Bambara letter as core.textfold does, and the SMS
    transliteration must send the same letters."""
    from bot.normalize import _CHAR_MAP
    from core.textfold import BAMBARA_LETTERS, fold
    from gateway.gsm7 import to_gsm7
    from tickets.gazetteer import normalize_place_text

    assert {k: v for k, v in _CHAR_MAP.items() if k in BAMBARA_LETTERS} == BAMBARA_LETTERS
    for letter, ascii_spelling in BAMBARA_LETTERS.items():
        word = f"s{letter}g{letter}"
        expected = f"s{ascii_spelling}g{ascii_spelling}"
        assert normalize(word) == fold(word) == normalize_place_text(word) == expected
        assert to_gsm7(word).lower() == expected
