"""The vote between the model and the keyword lexicon (components/keyword_vote.py)."""

from __future__ import annotations

import pytest
from components.keyword_vote import KeywordVote, voted_intent
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message


@pytest.mark.parametrize(
    "predicted,confidence,text,expected",
    [
        # the model found no need, the lexicon does: the need wins
        ("register_household", 0.99, "nous sommes 6 a sevare, pas d eau potable", "request_wash"),
        ("nlu_fallback", 0.35, "le petit a la fievre et tousse", "request_health"),
        # a greeting stays the model's (a greeting before a need is learnt from examples)
        ("greet", 0.9, "bonjour on a faim depuis hier", None),
        # an unsure ordinary need is corrected, a sure one is kept
        ("request_other", 0.4, "mon mari me frappe tous les jours", "protection_concern"),
        ("request_wash", 0.95, "le forage est en panne, les enfants sont malades", None),
        # never downgraded or turned into a new request
        ("psea_report", 0.4, "l agent veut coucher avec moi pour les vivres", None),
        ("protection_concern", 0.4, "ils ont pris nos papiers, pas d eau", None),
        ("thanks", 0.5, "merci nous avons recu les baches", None),
        ("ticket_status", 0.5, "ou en est ma demande d eau", None),
        ("complaint", 0.5, "la distribution de riz etait injuste", None),
        # a need predicted for a status question naming its request, or for a thank-you
        # naming what was received
        ("request_food", 1.0, "ma demande de nourriture, vous en etes ou", "ticket_status"),
        ("request_wash", 0.9, "where is my water request", "ticket_status"),
        ("request_shelter_nfi", 0.6, "merci beaucoup on a recu les nattes", "thanks"),
        ("request_shelter_nfi", 0.9, "barika an ye baasiw soro", "thanks"),
        ("request_shelter_nfi", 0.9, "merci on a recu les nattes mais pas de couvertures", None),
        # nothing in the lexicon: the model's answer stands
        ("out_of_scope", 0.9, "qui a gagne le match hier", None),
    ],
)
def test_voted_intent(predicted, confidence, text, expected):
    assert voted_intent(predicted, confidence, text, 0.7) == expected


def test_the_component_replaces_the_intent_and_its_ranking():
    message = Message(
        data={
            TEXT: "nous sommes 6 a sevare, pas d eau potable",
            INTENT: {"name": "register_household", "confidence": 0.99},
            INTENT_RANKING_KEY: [
                {"name": "register_household", "confidence": 0.99},
                {"name": "request_wash", "confidence": 0.01},
            ],
        }
    )
    (out,) = KeywordVote({"min_confidence": 0.7}).process([message])
    assert out.get(INTENT)["name"] == "request_wash"
    assert out.get(INTENT)["confidence"] >= 0.7
    assert [r["name"] for r in out.get(INTENT_RANKING_KEY)] == [
        "request_wash",
        "register_household",
    ]
