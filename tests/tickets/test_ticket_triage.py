"""Triage rules: protection floor, immediate-danger words in three languages, vulnerability."""

from __future__ import annotations

import pytest

from core.textfold import fold
from models.enums import TicketCategory, TicketPriority
from tickets.triage import raise_priority, triage

P = TicketPriority
C = TicketCategory


@pytest.mark.parametrize(
    "text",
    [
        # French, with and without accents
        "Il y a eu des violences hier soir au site",
        "ma fille a été violée",
        "ma fille a ete violee",
        "enlèvement de deux enfants",
        "enlevement de deux enfants",
        "il saigne beaucoup",
        "saignement abondant depuis ce matin",
        "mon mari est inconscient",
        "des hommes avec des armes",
        "ils avaient des fusils",
        # English
        "my sister was raped",
        "they abducted the chief",
        "kidnapping near the well",
        "he is bleeding",
        "she is unconscious",
        "men with weapons came",
        # Bambara, standard letters and the ASCII people type
        "marifatigiw nana dugu la",
        "binkanni kera an kan",
        "a bɛ ka joli bɔ",
        "a be ka joli bo kosebe",
        "muso mine fanga la",
    ],
)
def test_immediate_danger_makes_any_category_urgent(text: str) -> None:
    result = triage(C.HEALTH, [text])
    assert result.priority == P.URGENT, result
    assert result.danger


@pytest.mark.parametrize(
    "text",
    [
        "nous avons besoin d'eau potable",
        "le violon de mon frère",  # "viol" only as a whole word
        "an mago be ji la",
        "we need blankets and a tarpaulin",
        "la pompe est en panne depuis une semaine",
    ],
)
def test_ordinary_needs_stay_normal(text: str) -> None:
    result = triage(C.WASH, [text])
    assert result.priority == P.NORMAL
    assert result.danger == () and result.vulnerability == ()


@pytest.mark.parametrize(
    ("text", "signal"),
    [
        ("il y a des enfants seuls au site", "children_alone"),
        ("Enfants non accompagnés", "children_alone"),
        ("ma femme est enceinte", "pregnant"),
        ("muso konoma b'an fe", "pregnant"),
        ("muso kɔnɔma", "pregnant"),
        ("my wife is pregnant", "pregnant"),
        ("children alone at the school", "children_alone"),
        ("mon père est handicapé", "disability"),
        ("a person with a disability", "disability"),
    ],
)
def test_vulnerability_raises_one_step(text: str, signal: str) -> None:
    result = triage(C.SHELTER_NFI, [text])
    assert result.priority == P.HIGH
    assert signal in result.vulnerability


def test_several_vulnerabilities_raise_only_one_step() -> None:
    result = triage(C.WASH, ["femme enceinte et enfants seuls, mon père est handicapé"])
    assert result.priority == P.HIGH
    assert set(result.vulnerability) == {"pregnant", "children_alone", "disability"}


def test_protection_is_at_least_high_and_always_sensitive() -> None:
    plain = triage(C.PROTECTION, ["je veux parler à quelqu'un"])
    assert plain.priority == P.HIGH and plain.sensitive
    vulnerable = triage(C.PROTECTION, ["une femme enceinte menacée"])
    assert vulnerable.priority == P.URGENT
    danger = triage(C.PROTECTION, ["binkanni"])
    assert danger.priority == P.URGENT and danger.sensitive


def test_sensitive_flag_is_kept_for_other_categories_when_asked() -> None:
    assert triage(C.HEALTH, ["x"], sensitive=True).sensitive
    assert not triage(C.HEALTH, ["x"]).sensitive


def test_signals_name_the_rule_not_the_words() -> None:
    result = triage(C.PROTECTION, ["ils ont des armes et il saigne"])
    assert result.signals == ["danger:bleeding", "danger:weapons"]


def test_fold_handles_accents_bambara_letters_and_case() -> None:
    assert fold("  Enlèvement À GAO  ") == "enlevement a gao"
    assert fold("A Bɛ KA JOLI BƆ") == "a be ka joli bo"
    assert fold("ɲininkali ŋ") == "nyininkali ng"


def test_raise_priority_stops_at_urgent() -> None:
    assert raise_priority(P.LOW) == P.NORMAL
    assert raise_priority(P.HIGH) == P.URGENT
    assert raise_priority(P.URGENT) == P.URGENT
