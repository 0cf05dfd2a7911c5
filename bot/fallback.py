"""Keyword fallback classifier, used by the platform when the Rasa server is down or too slow.

Pure Python (3.10+), stdlib only; uses the platform's gazetteer (`tickets.gazetteer`) when it
can be imported, to find the place a message mentions. Same normalisation as the bot
(bot/normalize.py) and the bot's intent names, so a message handled here becomes the same
kind of ticket; the platform flags such tickets for review.

    >>> from bot.fallback import classify
    >>> classify("ji te yen Sevare, an ye mogo 7 ye").category
    'wash'
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

try:
    from .fallback_keywords import KEYWORDS, NOT_SIZE_UNITS, SIZE_CUES
    from .normalize import detect_language, guess_language, normalize, parse_household_size, tokens
except ImportError:  # imported as a top-level module (bot/ on sys.path)
    from fallback_keywords import KEYWORDS, NOT_SIZE_UNITS, SIZE_CUES  # type: ignore[no-redef]
    from normalize import (  # type: ignore[no-redef]
        detect_language,
        guess_language,
        normalize,
        parse_household_size,
        tokens,
    )

__all__ = [
    "CATEGORY_BY_INTENT",
    "FallbackResult",
    "classify",
    "household_size_in_text",
    "psea_in_text",
]

CATEGORY_BY_INTENT = {
    "request_health": "health",
    "request_wash": "wash",
    "request_shelter_nfi": "shelter_nfi",
    "request_food": "food",
    "request_other": "other",
    "protection_concern": "protection",
}
NEED_INTENTS = (
    "request_health",
    "request_wash",
    "request_shelter_nfi",
    "request_food",
    "request_other",
)
# Short-message intents: only when the message is short and has nothing more specific.
SHORT_INTENTS = ("greet", "thanks", "affirm", "deny")


@dataclass(frozen=True)
class FallbackResult:
    intent: str
    category: str | None  # ticket category for need/protection intents, else None
    language: str  # fr | bm | en
    place_code: str | None
    household_size: int | None
    confidence: float
    place_name: str | None = None
    # "psea" when the message reports sexual exploitation or abuse by an aid worker (the
    # intent is then protection_concern); None otherwise.
    kind: str | None = None
    # Where an arriving household came from ("we came from X, now in Y": X), when the
    # message says so; ``place_code`` is then where it is now.
    origin_code: str | None = None
    # "returnee" when the message says they came back home, "displaced" when it names where
    # they fled from; None otherwise (the registry's status, as the DTM counts it).
    household_status: str | None = None


_RETURN_CUES = re.compile(
    r"\b(retour(nes?|nees?)?|rentre(e|s|es)?|revenu(e|s|es)?|returned|came back|back home|"
    r"an segin|segin(na)?)\b"
)


class _Matcher:
    """Compiled keyword lists: exact words, word prefixes and phrases."""

    def __init__(self, entries: list[str]) -> None:
        self.words = {e for e in entries if " " not in e and not e.endswith("*")}
        self.prefixes = tuple(e[:-1] for e in entries if e.endswith("*") and " " not in e)
        self.phrases = [
            re.compile(
                r"(?<!\w)" + re.escape(e.rstrip("*")) + (r"\w*" if e.endswith("*") else r"(?!\w)")
            )
            for e in entries
            if " " in e
        ]

    def count(self, words: list[str], joined: str) -> int:
        hits = sum(
            1 for w in words if w in self.words or (self.prefixes and w.startswith(self.prefixes))
        )
        hits += sum(1 for p in self.phrases if p.search(joined))
        return hits


@lru_cache(maxsize=1)
def _matchers() -> dict[str, _Matcher]:
    return {
        intent: _Matcher([e for entries in by_lang.values() for e in entries])
        for intent, by_lang in KEYWORDS.items()
    }


def psea_in_text(text: str) -> bool:
    """Whether ``text`` reports sexual exploitation or abuse by an aid worker (PSEA). Delegates
    to the platform's one SEA screen (``tickets.psea_screen``: lexicon and rules), so the
    fallback, the API and every bot turn agree. Imported lazily: the Rasa image (built from
    bot/ alone) has no platform package, and there the keyword vote simply gets no PSEA
    hint — the platform screens every turn's text itself (conversation.dispatch), whatever
    Rasa made of it."""
    try:
        from tickets.psea_screen import screen
    except ImportError:  # pragma: no cover - the Rasa image only
        return False
    return screen(text).hit


_GAZETTEER: Any = None
_GAZETTEER_LOADED = False
# Threads of one process (the action server, the web app) classify at once from the first
# message on: without the lock a second caller saw "loaded" while the first was still importing
# the gazetteer (~0.7 s), got no gazetteer, and the place of its message was lost.
_GAZETTEER_LOCK = threading.Lock()


def _gazetteer() -> Any:
    global _GAZETTEER, _GAZETTEER_LOADED
    if _GAZETTEER_LOADED:
        return _GAZETTEER
    with _GAZETTEER_LOCK:
        if not _GAZETTEER_LOADED:
            try:
                from tickets.gazetteer import Gazetteer

                _GAZETTEER = Gazetteer.default()
            except Exception:
                _GAZETTEER = None
            _GAZETTEER_LOADED = True
    return _GAZETTEER


def _find_place(text: str) -> tuple[str | None, str | None, float]:
    gazetteer = _gazetteer()
    if gazetteer is None:
        return None, None, 0.0
    try:
        match = gazetteer.find_in_text(text)
    except Exception:
        return None, None, 0.0
    if match is None:
        return None, None, 0.0
    return match.place.code, match.place.name, float(match.confidence)


def _find_origin(text: str, place_code: str | None) -> str | None:
    """The code of the place the message introduces as the household's origin ("venus de
    Douentza", "we came from Gao", "an bora Menaka"), never the place it is in now."""
    gazetteer = _gazetteer()
    if gazetteer is None or place_code is None:
        return None
    try:
        match = gazetteer.find_origin_in_text(text)
    except Exception:
        return None
    if match is None or match.place.code == place_code:
        return None
    return str(match.place.code)


_SIZE_CUES = set(SIZE_CUES)
_NOT_SIZE = set(NOT_SIZE_UNITS)
_WEAK_NUMBER_WORDS = {"un", "une", "a", "kelen", "one", "an", "tan", "san"}


def _household_size(words: list[str]) -> int | None:
    """A number (digits or words) that sits next to a household cue and is not a duration."""
    for i, word in enumerate(words):
        if word in _WEAK_NUMBER_WORDS:
            continue
        value = parse_household_size(word) if (word.isdigit() or word.isalpha()) else None
        if value is None:
            continue
        before = words[max(0, i - 3) : i]
        after = words[i + 1 : i + 3]
        if after and after[0] in _NOT_SIZE:
            continue
        if _SIZE_CUES & set(before + after):
            # a spelled-out number may span several words ("mugan ni duuru", "vingt et un")
            return parse_household_size(" ".join(words[i : i + 4])) or value
    return None


def household_size_in_text(text: str) -> int | None:
    """The household size stated in a free-text message ("nous sommes 6", "an ye mogo 8 ye",
    "we are 5"), never a duration ("depuis 3 jours"). Shared with the bot's actions, which
    prefer it over the NLU entity: the model sometimes tags the first number it sees."""
    return _household_size(tokens(normalize(text)))


def classify(text: str, language_hint: str | None = None) -> FallbackResult:
    norm = normalize(text)
    words = tokens(norm)
    joined = " ".join(words)
    language = guess_language(text) or (
        language_hint if language_hint in ("fr", "bm", "en") else detect_language(text)
    )
    place_code, place_name, place_conf = _find_place(text)
    size = _household_size(words)
    if not words:
        return FallbackResult("out_of_scope", None, language, None, None, 0.9)

    scores = {intent: m.count(words, joined) for intent, m in _matchers().items()}

    origin_code = _find_origin(text, place_code)
    if _RETURN_CUES.search(norm):
        status: str | None = "returnee"
    else:
        status = "displaced" if origin_code else None

    def result(intent: str, confidence: float) -> FallbackResult:
        return FallbackResult(
            origin_code=origin_code,
            household_status=status,
            intent=intent,
            category=CATEGORY_BY_INTENT.get(intent),
            language=language,
            place_code=place_code,
            household_size=size,
            confidence=round(min(confidence, 0.95), 2),
            place_name=place_name,
        )

    # Safety first: sexual exploitation and abuse by an aid worker, then any sign of a
    # protection concern, win (a human reviews it discreetly).
    if psea_in_text(text):
        psea = result("protection_concern", 0.9)
        return FallbackResult(**{**psea.__dict__, "kind": "psea"})
    if scores["protection_concern"]:
        return result("protection_concern", 0.6 + 0.1 * scores["protection_concern"])
    # Explicit data-rights commands, when they are the point of a short message.
    if scores["erase_data"] and len(words) <= 12 and not any(scores[i] for i in NEED_INTENTS):
        return result("erase_data", 0.6 + 0.1 * scores["erase_data"])
    if scores["opt_out"] and len(words) <= 10 and not any(scores[i] for i in NEED_INTENTS):
        return result("opt_out", 0.6 + 0.1 * scores["opt_out"])
    need = max(NEED_INTENTS, key=lambda i: (scores[i], -NEED_INTENTS.index(i)))
    if (scores["ticket_status"] and scores["ticket_status"] >= scores[need]) or (
        re.search(r"\bt-?[0-9a-z]{5}\b", norm) and not scores[need]
    ):
        return result("ticket_status", 0.5 + 0.1 * scores["ticket_status"])
    if scores[need]:
        return result(need, 0.5 + 0.1 * scores[need])
    if place_code and size:
        return result("register_household", 0.7)
    if len(words) <= 6:
        short = max(SHORT_INTENTS, key=lambda i: scores[i])
        if scores[short]:
            return result(short, 0.6)
        if place_code or size:
            return result("inform", 0.6)
        if parse_household_size(joined) and len(words) <= 3:
            size = parse_household_size(joined)
            return result("inform", 0.5)
    if place_code and place_conf >= 0.9 and len(words) <= 4:
        return result("inform", 0.5)
    return result("out_of_scope", 0.3)
