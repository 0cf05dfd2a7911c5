"""The one SEA screen (tickets.psea_screen) on its own tables: every report of sexual
exploitation or abuse by an aid worker in French, Bambara and English is recognised, and the
hard negatives (GBV with no aid worker, thanks, distribution complaints, needs) are not. The
keyword fallback (bot.fallback) answers the same, since it delegates to it."""

from __future__ import annotations

import re

import pytest

from bot.fallback import classify, psea_in_text
from tests.tickets.psea_tables import NOT_SEA, SEA_ALL, SEA_BM, SEA_EN, SEA_FR
from tickets.psea import screen
from tickets.psea_screen import prepare


def test_the_tables_are_big_enough_and_distinct() -> None:
    for table in (SEA_FR, SEA_BM, SEA_EN):
        assert len(set(table)) == len(table) >= 15
    assert len(SEA_ALL) >= 40 and len(set(NOT_SEA)) == len(NOT_SEA) >= 30
    assert not set(SEA_ALL) & set(NOT_SEA)


def test_recall_is_total_and_no_hard_negative_is_psea() -> None:
    missed = [text for text in SEA_ALL if not screen(text)]
    flagged = [text for text in NOT_SEA if screen(text)]
    assert (len(SEA_ALL) - len(missed), len(flagged)) == (len(SEA_ALL), 0), (missed, flagged)


@pytest.mark.parametrize("text", SEA_ALL)
def test_the_keyword_fallback_makes_each_report_a_psea_protection_case(text: str) -> None:
    result = classify(text)
    assert (result.kind, result.intent, result.category) == (
        "psea",
        "protection_concern",
        "protection",
    ), text
    assert psea_in_text(text)


@pytest.mark.parametrize("text", NOT_SEA)
def test_the_keyword_fallback_leaves_hard_negatives_alone(text: str) -> None:
    assert classify(text).kind is None, text
    assert not psea_in_text(text)


def test_gbv_without_an_aid_worker_stays_an_ordinary_protection_concern() -> None:
    result = classify("mon voisin a violé ma fille hier soir, aidez nous")
    assert result.intent == "protection_concern" and result.kind is None


def test_bambara_letters_and_accents_do_not_matter() -> None:
    special = "ONG baarakɛla ko ni n ma la a fɛ, a tɛ bâche di n ma"
    plain = "ong baarakela ko ni n ma la a fe a te bache di n ma"
    assert prepare(special) == prepare(plain)
    assert screen(special) and screen(plain)


def test_typos_and_shorthand_still_match() -> None:
    assert screen("lagent de lONG veut ke je couche avc lui pr avoir le kit")
    assert screen("the ngo guy wants me to sleeeep wit him 4 the food card")
    assert screen("le distribiteur demande des relations sexsuelles aux filles")


def test_the_reason_names_signal_groups_never_words_of_the_message() -> None:
    text = "Le chef de camp Moussa exige que ma fille couche avec lui pour la carte"
    result = screen(text)
    assert result.hit and result.reason
    assert not set(re.findall(r"\w+", result.reason.lower())) & {"moussa", "fille", "carte"}
    assert not screen("") and not screen(None) and not screen("   ").reason
