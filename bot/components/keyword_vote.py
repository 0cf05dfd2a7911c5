"""A vote between the trained classifier and the keyword fallback's lexicon (issue 14).

Runs last in the NLU pipeline (after FallbackClassifier). When the model saw no need (it
answered nlu_fallback, out_of_scope, a bare place or number, or a household report) or saw an
ordinary need with less than ``min_confidence`` (0.7), and the keyword lexicon of
``bot/fallback.py`` names a need or a protection concern, the lexicon's intent wins. A
protection or PSEA prediction is never replaced (nothing sensitive is downgraded), and neither
is a thank-you, a status question, a complaint, a rumour or a question: a need word in those
must not open a new request. The other way round, a need predicted for a status question that
names its request ("ou en est ma demande d'eau") or for a thank-you that names what was
received ("merci, on a recu les baches") becomes ticket_status / thanks.

Measured on the held-out sets (bot/eval/results.md, "Ticket category right", 2026-12-02): it
changes few answers — French 0.945 → 0.964, Bambara 0.891 → 0.873 (one shelter need at 0.699
taken for water), English unchanged; its main use is the messages the model files as no need.
"""

from __future__ import annotations

import re
from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message

try:  # the platform's layout (repository root on sys.path) or the bot folder as cwd
    from bot.fallback import classify
    from bot.normalize import normalize, tokens
except ImportError:  # pragma: no cover - depends on sys.path
    from fallback import classify  # type: ignore[no-redef]
    from normalize import normalize, tokens  # type: ignore[no-redef]

# Key of the parse result holding the model's own intent when the vote replaced it.
VOTED_OVER = "voted_over"
# Intents the lexicon may fill in for: the model found no need in the message.
# (A greeting is not among them: "bonjour" alone must stay a greeting; a greeting before a
# need is the model's to learn, and an unsure one is below the FallbackClassifier anyway.)
NO_NEED = {"nlu_fallback", "out_of_scope", "inform", "register_household"}
# Needs the lexicon may correct when the model was unsure of them.
ORDINARY_NEEDS = {
    "request_health",
    "request_wash",
    "request_shelter_nfi",
    "request_food",
    "request_other",
}
# What the lexicon may answer for the vote to count.
LEXICON_NEEDS = {*ORDINARY_NEEDS, "protection_concern"}


# A status question that names the kind of request ("ou en est ma demande d'eau ?") is a
# status question, not a new request; a thank-you that names what was received is thanks.
_MY_REQUEST = re.compile(
    r"\b(ma|mes|notre|nos|mon|my|our|n ka|an ka) (\w+ ){0,2}"
    r"(demande|demandes|requete|plainte|dossier|request|requests|complaint|case|nyininkali)\b"
)
_STATUS_CUE = re.compile(
    r"\b(ou en est|en etes ou|ou en sont|c est ou|elle est ou|ca avance|des nouvelles|"
    r"toujours rien|toujours pas|where is|any news|what about|still nothing|still no|"
    r"be min|kibaru)\b"
)
_THANKS_START = re.compile(r"^(merci|thanks|thank you|barika|aw ni ce|i ni ce)\b")
_RECEIVED = re.compile(
    r"\b(recu|recus|recue|recues|arrive|arrives|arrivee|arrivees|received|"
    r"got|soro|sera)\b"
)
_STILL_NEEDED = re.compile(r"\b(mais|but|nka|pas de|besoin|need|manque|missing|te)\b")


def _status_or_thanks(text: str) -> str | None:
    normalized = " ".join(tokens(normalize(text)))
    if _MY_REQUEST.search(normalized) and _STATUS_CUE.search(normalized):
        return "ticket_status"
    if (
        _THANKS_START.search(normalized)
        and _RECEIVED.search(normalized)
        and not _STILL_NEEDED.search(normalized)
    ):
        return "thanks"
    return None


def voted_intent(
    predicted: str | None, confidence: float, text: str, min_confidence: float
) -> str | None:
    """The lexicon's intent when it should replace the model's, else None."""
    if predicted in ORDINARY_NEEDS:
        corrected = _status_or_thanks(text)
        if corrected is not None:
            return corrected
    unsure_need = predicted in ORDINARY_NEEDS and confidence < min_confidence
    if predicted not in NO_NEED and not unsure_need:
        return None
    lexicon = classify(text, language_hint=None).intent
    if lexicon not in LEXICON_NEEDS or lexicon == predicted:
        return None
    return lexicon


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False)
class KeywordVote(GraphComponent):
    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {"min_confidence": 0.7}

    def __init__(self, config: dict[str, Any]) -> None:
        self.min_confidence = float(config.get("min_confidence", 0.7))

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> KeywordVote:
        return cls(config)

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            intent = message.get(INTENT) or {}
            text = message.get(TEXT) or ""
            name = voted_intent(
                intent.get("name"),
                float(intent.get("confidence") or 0.0),
                text,
                self.min_confidence,
            )
            if name is None:
                continue
            # The lexicon's intent, with the confidence the rules need (above both thresholds)
            voted = {"name": name, "confidence": max(self.min_confidence, 0.7)}
            ranking = [
                voted,
                *(r for r in message.get(INTENT_RANKING_KEY) or [] if r.get("name") != name),
            ]
            message.set(INTENT, voted, add_to_output=True)
            message.set(INTENT_RANKING_KEY, ranking, add_to_output=True)
            # What the model alone said, for the evaluation (scripts/evaluate.py)
            message.set(VOTED_OVER, intent, add_to_output=True)
        return messages
