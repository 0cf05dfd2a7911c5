"""The platform-side keyword fallback (bot/fallback.py), measured on the bot's HELD-OUT files.

Runs in the platform venv (Python 3.11, no rasa): `.venv/bin/python -m pytest tests/bot -q`.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot.fallback import CATEGORY_BY_INTENT, FallbackResult, classify  # noqa: E402

EVAL_DIR = ROOT / "bot" / "eval"
ANNOTATION = re.compile(r"\[([^\]]+)\]\(([^)]+)\)")
NEED_INTENTS = {
    "request_health",
    "request_wash",
    "request_shelter_nfi",
    "request_other",
    "protection_concern",
}


def heldout(lang: str) -> list[tuple[str, str, dict[str, list[str]]]]:
    items = []
    intent = None
    for line in (EVAL_DIR / f"heldout_{lang}.yml").read_text(encoding="utf-8").splitlines():
        m = re.match(r"^- intent:\s*(\S+)", line)
        if m:
            intent = m.group(1)
            continue
        m = re.match(r"^\s{4,}- (.*)$", line)
        if m and intent:
            entities: dict[str, list[str]] = {}
            for value, name in ANNOTATION.findall(m.group(1)):
                entities.setdefault(name, []).append(value)
            items.append((intent, ANNOTATION.sub(r"\1", m.group(1)), entities))
    return items


def accuracy(lang: str, intents: set[str] | None = None) -> float:
    items = [it for it in heldout(lang) if intents is None or it[0] in intents]
    hits = sum(1 for intent, text, _ in items if classify(text).intent == intent)
    return hits / len(items)


@pytest.mark.parametrize("lang", ["fr", "bm", "en"])
def test_need_intents_accuracy_on_heldout(lang: str) -> None:
    need = accuracy(lang, NEED_INTENTS)
    overall = accuracy(lang)
    print(f"\nfallback {lang}: need intents {need:.2f}, all intents {overall:.2f}")
    assert need >= 0.7
    assert overall >= 0.6


@pytest.mark.parametrize("lang", ["fr", "bm", "en"])
def test_language_detected(lang: str) -> None:
    items = heldout(lang)
    long_items = [text for _, text, _ in items if len(text.split()) >= 4]
    hits = sum(1 for text in long_items if classify(text).language == lang)
    rate = hits / len(long_items)
    print(f"\nlanguage {lang}: {rate:.2f} of {len(long_items)} messages of 4+ words")
    assert rate >= 0.8


def test_household_size_found_next_to_cues() -> None:
    assert classify("nous sommes 7 a Sevare pas d eau").household_size == 7
    assert classify("an ye mogo wolonwula ye, ji te yen").household_size == 7
    assert classify("we are twenty one people, no water").household_size == 21
    assert classify("mon enfant est malade depuis 3 jours").household_size is None


def test_result_shape_and_categories() -> None:
    result = classify("ji te yen Sevare an ye mogo 7 ye", language_hint="fr")
    assert isinstance(result, FallbackResult)
    assert result.intent == "request_wash" and result.category == "wash"
    assert result.language == "bm"
    assert 0 < result.confidence <= 1
    assert CATEGORY_BY_INTENT["protection_concern"] == "protection"


def test_protection_wins_and_junk_is_out_of_scope() -> None:
    assert classify("ils ont enleve ma fille, on a pas d eau").intent == "protection_concern"
    assert classify("asdfgh").intent == "out_of_scope"
    assert classify("/restart").intent == "out_of_scope"
    assert classify("").intent == "out_of_scope"


def test_place_from_gazetteer_when_available() -> None:
    result = classify("pas d eau potable a Sevare depuis lundi")
    assert result.place_code is not None
    assert result.place_name is not None and "var" in result.place_name.lower()
