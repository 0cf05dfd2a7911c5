"""Triage: the priority and sensitivity of a new report, from its category and its words.

Rules (issue 6):
- protection is at least HIGH and always sensitive;
- words signalling immediate danger (violence, rape, abduction, bleeding, unconscious, weapons,
  killing — French, Bambara, English) make it URGENT;
- children alone, pregnant women, disability raise the priority one step.

The word lists live in ``tickets/data/triage_keywords.json`` so protection staff can extend them
without touching code. Only the names of the signals that fired are recorded, never the words.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from core.textfold import fold
from models.enums import TicketCategory, TicketPriority

KEYWORDS_FILE = Path(__file__).resolve().parent / "data" / "triage_keywords.json"

PRIORITY_ORDER: tuple[TicketPriority, ...] = (
    TicketPriority.LOW,
    TicketPriority.NORMAL,
    TicketPriority.HIGH,
    TicketPriority.URGENT,
)


def raise_priority(priority: TicketPriority, steps: int = 1) -> TicketPriority:
    index = min(PRIORITY_ORDER.index(priority) + steps, len(PRIORITY_ORDER) - 1)
    return PRIORITY_ORDER[index]


def max_priority(*priorities: TicketPriority) -> TicketPriority:
    return max(priorities, key=lambda p: p.rank)


def _phrase_pattern(phrase: str) -> str:
    folded = fold(phrase)
    prefix = folded.endswith("*")
    words = folded.rstrip("*").split()
    body = r"\s+".join(re.escape(word) for word in words)
    ending = r"[a-z0-9]*" if prefix else ""
    # Word boundaries on folded ASCII: letters/digits only, so "viol" never fires on "violon".
    return rf"(?<![a-z0-9]){body}{ending}(?![a-z0-9])"


@dataclass(frozen=True)
class Signal:
    name: str
    pattern: re.Pattern[str]


@dataclass(frozen=True)
class KeywordRules:
    danger: tuple[Signal, ...]
    vulnerability: tuple[Signal, ...]

    @classmethod
    def from_mapping(cls, data: Mapping[str, object]) -> KeywordRules:
        return cls(
            danger=_signals(data.get("danger")),
            vulnerability=_signals(data.get("vulnerability")),
        )


def _signals(group: object) -> tuple[Signal, ...]:
    if not isinstance(group, Mapping):
        return ()
    signals: list[Signal] = []
    for name, phrases in group.items():
        if not isinstance(phrases, list) or not phrases:
            continue
        alternatives = "|".join(_phrase_pattern(str(p)) for p in phrases)
        signals.append(Signal(name=str(name), pattern=re.compile(alternatives)))
    return tuple(signals)


@lru_cache(maxsize=1)
def default_rules() -> KeywordRules:
    data = json.loads(KEYWORDS_FILE.read_text(encoding="utf-8"))
    return KeywordRules.from_mapping(data)


@dataclass(frozen=True)
class TriageResult:
    priority: TicketPriority
    sensitive: bool
    danger: tuple[str, ...]  # names of the signals that fired, e.g. ("weapons",)
    vulnerability: tuple[str, ...]

    @property
    def signals(self) -> list[str]:
        danger = [f"danger:{name}" for name in self.danger]
        return danger + [f"vulnerability:{name}" for name in self.vulnerability]


def _fired(signals: Iterable[Signal], text: str) -> tuple[str, ...]:
    return tuple(s.name for s in signals if s.pattern.search(text))


def base_priority(category: TicketCategory) -> TicketPriority:
    return TicketPriority.HIGH if category == TicketCategory.PROTECTION else TicketPriority.NORMAL


def triage(
    category: TicketCategory,
    texts: Iterable[str | None],
    *,
    sensitive: bool | None = None,
    rules: KeywordRules | None = None,
) -> TriageResult:
    """Priority and sensitivity for a report of ``category`` saying ``texts``."""
    active = rules or default_rules()
    folded = fold(" \n ".join(t for t in texts if t))
    danger = _fired(active.danger, folded)
    vulnerability = _fired(active.vulnerability, folded)
    priority = base_priority(category)
    if danger:
        priority = TicketPriority.URGENT
    elif vulnerability:
        # One step however many vulnerabilities: the danger words are what makes it urgent.
        priority = raise_priority(priority)
    is_sensitive = category == TicketCategory.PROTECTION or bool(sensitive)
    return TriageResult(
        priority=priority, sensitive=is_sensitive, danger=danger, vulnerability=vulnerability
    )
