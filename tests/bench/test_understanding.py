"""The scorer of bench/understanding.py, on a synthetic set and a made-up outcome: what it
counts right and wrong, and that a report names ids, never message texts."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from models.enums import TicketCategory

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import understanding as u  # noqa: E402

CATEGORIES = [c.value for c in TicketCategory]

SYNTHETIC: list[dict[str, Any]] = [
    {"id": "t-1", "language": "fr", "text": "plus d'eau au site de Socoura, on est 8",
     "category": "wash", "kind": "need", "region": "Mopti", "place": "Socoura",
     "household_size": 8, "sea": False, "topic": "water", "origin": None},
    {"id": "t-2", "language": "fr", "text": "l'agent demande des faveurs contre la liste",
     "category": "protection", "kind": "psea", "region": None, "place": None,
     "household_size": None, "sea": True, "topic": "psea", "origin": None},
    {"id": "t-3", "language": "bm", "text": "i ni ce kosebe, an ye bidonw soro",
     "category": None, "kind": "positive_feedback", "region": None, "place": None,
     "household_size": None, "sea": False, "topic": "thanks", "origin": None},
    {"id": "t-4", "language": "en", "text": "where is my shelter request",
     "category": None, "kind": "status", "region": None, "place": None,
     "household_size": None, "sea": False, "topic": "status", "origin": None},
    {"id": "t-5", "language": "en", "text": "we came from Menaka, now in Gao, 6 of us",
     "category": None, "kind": "registration", "region": "Gao", "place": "Gao",
     "household_size": 6, "sea": False, "topic": "arrival", "origin": "Ménaka"},
]  # fmt: skip
DIALOGUE: dict[str, Any] = {
    "id": "dlg-1", "language": "fr", "turns": ["Bonjour", "on a faim", "Niamana", "10"],
    "expected": {"category": "other", "kind": "need", "region": "Koulikoro", "place": "Niamana",
                 "household_size": 10, "sea": False, "origin": None},
}  # fmt: skip


def ticket(category: str, **fields: object) -> u.TicketView:
    values: dict[str, object] = {
        "kind": None, "priority": "normal", "sensitive": False, "region": None, "place": None,
        "household_size": None,
    }  # fmt: skip
    values.update(fields)
    return u.TicketView(category=category, **values)  # type: ignore[arg-type]


# What the platform made of the five: t-1 right; t-2 sensitive protection but normal priority
# (not recognised as SEA); t-3, a thank-you, opened a water ticket; t-4 none (right); t-5 a
# registration in Gao with its origin, spelled without the accent.
OUTCOMES = {
    "t-1": u.Outcome(True, [ticket("wash", region="Mopti", place="Socoura", household_size=8)]),
    "t-2": u.Outcome(True, [ticket("protection", sensitive=True)]),
    "t-3": u.Outcome(True, [ticket("wash")]),
    "t-4": u.Outcome(True, []),
    "t-5": u.Outcome(True, [], u.HouseholdView("Gao", "Gao", 6, "Menaka")),
}


@pytest.fixture
def synthetic_set(tmp_path: Path) -> Path:
    (tmp_path / "messages.jsonl").write_text(
        "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in SYNTHETIC)
    )
    (tmp_path / "dialogues.jsonl").write_text(json.dumps(DIALOGUE) + "\n")
    return tmp_path


def test_scores_each_measure_per_language(synthetic_set: Path) -> None:
    messages, dialogues = u.load_set(synthetic_set)
    assert [c.id for c in messages] == ["t-1", "t-2", "t-3", "t-4", "t-5"]
    assert dialogues[0].turns == ("Bonjour", "on a faim", "Niamana", "10")

    result = u.score(messages, OUTCOMES, CATEGORIES)

    fr, bm, en = (result.tallies[lang] for lang in ("fr", "bm", "en"))
    assert (fr["category"].right, fr["category"].total) == (2, 2)
    assert (fr["sea"].right, fr["sea"].total, fr["sea"].wrong_ids) == (0, 1, ["t-2"])
    assert (fr["region"].right, fr["household"].right) == (1, 1)
    assert (bm["category"].right, bm["no_wrong_ticket"].wrong_ids) == (0, ["t-3"])
    assert (en["category"].right, en["category"].total) == (2, 2)
    assert (en["no_wrong_ticket"].right, en["no_wrong_ticket"].total) == (1, 1)
    assert (en["registered"].right, en["region"].right, en["household"].right) == (1, 1, 1)
    assert result.by_kind["bm"]["positive_feedback"] == Counter({"wash": 1})
    assert result.by_kind["en"]["registration"] == Counter({u.NO_TICKET: 1})
    assert not result.kinds_exposed
    assert result.tickets == 3


def test_sea_needs_sensitive_high_priority_protection_and_psea_kind_when_exposed() -> None:
    assert u.sea_recognised(ticket("protection", sensitive=True, priority="urgent"))
    assert u.sea_recognised(ticket("protection", sensitive=True, priority="high", kind="psea"))
    assert not u.sea_recognised(ticket("protection", sensitive=True, priority="normal"))
    assert not u.sea_recognised(ticket("other", sensitive=True, priority="urgent"))
    assert not u.sea_recognised(ticket("protection", sensitive=False, priority="urgent"))
    assert not u.sea_recognised(
        ticket("protection", sensitive=True, priority="urgent", kind="complaint")
    )
    assert not u.sea_recognised(None)


def test_kinds_are_scored_once_the_api_exposes_them(synthetic_set: Path) -> None:
    messages, _ = u.load_set(synthetic_set)
    outcomes = dict(OUTCOMES)
    outcomes["t-1"] = u.Outcome(True, [ticket("wash", kind="need", region="Mopti")])
    outcomes["t-2"] = u.Outcome(
        True, [ticket("protection", kind="psea", sensitive=True, priority="urgent")]
    )
    result = u.score(messages, outcomes, CATEGORIES)
    assert result.kinds_exposed
    assert (result.tallies["fr"]["kind"].right, result.tallies["fr"]["kind"].total) == (2, 2)
    assert result.tallies["fr"]["sea"].right == 1
    assert result.kind_confusion["psea"] == Counter({"psea": 1})


def test_food_expects_a_food_category_only_once_there_is_one() -> None:
    food = u.Case("x", "fr", ("on a faim",), "other", "need", None, None, None, False, "food")
    without_food = [c for c in CATEGORIES if c != "food"]
    assert u.expected_category(food, without_food) == "other"
    assert u.expected_category(food, [*without_food, "food"]) == "food"


def test_region_is_the_ancestor_below_the_country() -> None:
    places: dict[str, dict[str, Any]] = {
        "ML": {"code": "ML", "name": "Mali", "kind": "country", "parent": None},
        "BKO": {"code": "BKO", "name": "District de Bamako", "kind": "region", "parent": "ML"},
        "BKO-6": {"code": "BKO-6", "name": "Commune VI", "kind": "commune", "parent": "BKO"},
        "FAL": {"code": "FAL", "name": "Faladié", "kind": "site", "parent": "BKO-6"},
    }  # fmt: skip
    assert u.region_of("FAL", places) == "District de Bamako"
    assert u.region_of("BKO", places) == "District de Bamako"
    assert u.region_of("ML", places) is None
    assert u.region_of(None, places) is None
    assert u.same_place("Bamako", "District de Bamako")
    assert u.same_place("Sévaré", "Sevare")
    assert not u.same_place("Kalaban Coura", "Kalaban Coro")


def test_dialogue_is_right_only_when_every_field_is(synthetic_set: Path) -> None:
    _, dialogues = u.load_set(synthetic_set)
    good = u.Outcome(True, [ticket("other", region="Koulikoro", household_size=10)])
    no_size = u.Outcome(True, [ticket("other", region="Koulikoro")])
    assert u.dialogue_right(dialogues[0], good, CATEGORIES)
    assert not u.dialogue_right(dialogues[0], no_size, CATEGORIES)


def test_report_names_ids_and_never_a_message_text(synthetic_set: Path) -> None:
    messages, dialogues = u.load_set(synthetic_set)
    report = u.render(
        "fallback", messages, OUTCOMES, dialogues,
        {"dlg-1": u.Outcome(True, [])}, CATEGORIES, with_ids=True,
    )  # fmt: skip
    assert "| category right | 1.00 (2 / 2) | 0.00 (0 / 1) | 1.00 (2 / 2) |" in report
    assert "| SEA recognised | 0.00 (0 / 1) | – | – |" in report
    assert "- fr, SEA recognised: t-2" in report
    assert "- bm, thanks/status/greeting without a ticket: t-3" in report
    assert "Dialogues fully right: 0 of 1." in report
    assert "What the SEA reports became: protection, normal, sensitive × 1." in report
    for line in SYNTHETIC:
        assert line["text"] not in report
    for turn in DIALOGUE["turns"]:
        assert f" {turn} " not in report


def test_without_a_set_it_scores_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert u.main([]) == 0
    assert "scored once" in capsys.readouterr().out


def test_the_blind_set_is_well_formed() -> None:
    """Labels only (no text is read for anything but its presence): every category a
    TicketCategory value, every language with at least 10 SEA messages."""
    messages, dialogues = u.load_set(ROOT / "bench" / "data" / "blind_2026-12-02")
    assert all(c.category in (*CATEGORIES, None) for c in messages + dialogues)
    assert all(c.turns and all(c.turns) for c in messages + dialogues)
    assert len({c.id for c in messages}) == len(messages)
    sea = Counter(c.language for c in messages if c.sea)
    assert min(sea[lang] for lang in u.LANGUAGES) >= 10
    assert all(c.category == "protection" for c in messages + dialogues if c.sea)
    assert Counter(c.language for c in messages) == Counter({"fr": 163, "bm": 80, "en": 55})
    assert len(dialogues) == 15
    assert [c.id for c in u.take(messages, 4)] == ["fr-001", "bm-001", "en-001", "fr-002"]
