"""Validate action-server answers with one compiled validator instead of a new one per call.

Rasa 3.6 checks every custom action's answer with ``jsonschema.validate(result, schema)``,
which first validates the (constant) schema itself against the JSON Schema meta-schema, then
builds a fresh validator. With jsonschema 4.17 that meta-check was half of all the CPU the
Rasa server spent on a turn (py-spy under bench/bot_latency.py: 52% of samples in
``RemoteAction._validate_action_result``, 50% in ``check_schema``), and a turn runs two or three
custom actions.

``install()`` replaces ``RemoteAction._validate_action_result`` with the same check — same
schema, same best-match error, same message appended — against a validator built once. The
deme channel installs it when Rasa loads the channel (``credentials.yml``), so it is active in
every Rasa server that can receive Deme traffic. If a future Rasa version renames the method,
``install`` leaves Rasa untouched and logs it: slower, never wrong.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

logger = logging.getLogger(__name__)

_MARKER = "_deme_cached_validator"


@lru_cache(maxsize=1)
def _validator() -> Any:
    from jsonschema import validators
    from rasa.core.actions.action import RemoteAction

    schema = RemoteAction.action_response_format_spec()
    validator_class = validators.validator_for(schema)
    validator_class.check_schema(schema)  # once, where jsonschema.validate does it every call
    return validator_class(schema)


def validate_action_result(self: Any, result: dict[str, Any]) -> bool:
    """``RemoteAction._validate_action_result`` with a cached validator (same behaviour)."""
    from jsonschema import ValidationError, exceptions
    from rasa.shared.constants import DOCS_BASE_URL

    error = exceptions.best_match(_validator().iter_errors(result))
    if error is None:
        return True
    assert isinstance(error, ValidationError)
    error.message += (
        ". Failed to validate Action server response from API, "
        "make sure your response from the Action endpoint is valid. "
        "For more information about the format visit "
        f"{DOCS_BASE_URL}/custom-actions"
    )
    raise error


def install() -> bool:
    """Patch Rasa's RemoteAction once; True when the cached validator is in place."""
    try:
        from rasa.core.actions.action import RemoteAction
    except ImportError:  # not inside a Rasa server (e.g. the platform's own tests)
        return False
    current = getattr(RemoteAction, "_validate_action_result", None)
    if current is None:
        logger.warning("Rasa has no RemoteAction._validate_action_result: validator not cached")
        return False
    if getattr(current, _MARKER, False):
        return True
    setattr(validate_action_result, _MARKER, True)
    RemoteAction._validate_action_result = validate_action_result  # type: ignore[method-assign]
    return True
