"""The cached action-answer validator behaves exactly like Rasa's own check."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from channels import action_validation
from rasa.core.actions.action import RemoteAction

GOOD_ANSWERS: list[dict[str, Any]] = [
    {"events": [], "responses": []},
    {
        "events": [
            {"event": "slot", "name": "ticket_ref", "value": "T-7K2Q9"},
            {"event": "slot", "name": "place", "value": None},
        ],
        "responses": [{"response": "utter_ask_place", "text": None}],
    },
    {},
]

BAD_ANSWERS: list[dict[str, Any]] = [
    {"events": "not a list"},
    {"events": [{"event": "slot", "value": "x"}]},  # a slot event without its name
    {"events": [{"event": "no_such_event"}]},
    {"responses": ["a string, not an object"]},
]


def _rasa_original(result: dict[str, Any]) -> jsonschema.ValidationError | None:
    """What jsonschema.validate (Rasa's own call) says about ``result``."""
    try:
        jsonschema.validate(result, RemoteAction.action_response_format_spec())
    except jsonschema.ValidationError as error:
        return error
    return None


def test_install_replaces_rasa_method_once() -> None:
    assert action_validation.install() is True
    assert action_validation.install() is True  # idempotent
    assert RemoteAction._validate_action_result is action_validation.validate_action_result


@pytest.mark.parametrize("answer", GOOD_ANSWERS)
def test_valid_answers_pass(answer: dict[str, Any]) -> None:
    assert _rasa_original(answer) is None
    assert action_validation.validate_action_result(None, answer) is True


@pytest.mark.parametrize("answer", BAD_ANSWERS)
def test_invalid_answers_fail_with_the_same_error_as_rasa(answer: dict[str, Any]) -> None:
    expected = _rasa_original(answer)
    assert expected is not None
    with pytest.raises(jsonschema.ValidationError) as raised:
        action_validation.validate_action_result(None, answer)
    assert list(raised.value.absolute_path) == list(expected.absolute_path)
    assert raised.value.message.startswith(expected.message)
    assert "Failed to validate Action server response" in raised.value.message
