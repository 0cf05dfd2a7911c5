"""Screen-budget and character-set helpers for USSD screens.

USSD travels in the GSM 7-bit default alphabet: a character outside it is dropped or turns the
screen into garbage on a basic phone, and some aggregators cap a screen at 160 characters
(including the ``CON ``/``END `` prefix). Static text is checked by the tests; dynamic text
(place names, references) goes through :func:`screen_safe` at run time.
"""

from __future__ import annotations

from gateway.gsm7 import GSM7_BASIC, to_gsm7

SCREEN_LIMIT = 160


def is_gsm7(text: str) -> bool:
    """Basic table only: the escape table (``[]{}|~^\\€``) costs two septets and some USSD
    gateways mangle it, so screens never use it."""
    return all(ch in GSM7_BASIC for ch in text)


def screen_safe(text: str) -> str:
    """``text`` in GSM-7 basic characters only: é/è/à stay, ê/ç/ï lose their accent, Bambara
    letters become their ASCII spellings (the SMS transliteration), anything else
    unrepresentable is dropped."""
    if is_gsm7(text):
        return text
    return "".join(ch for ch in to_gsm7(text) if ch in GSM7_BASIC)


def clip(text: str, width: int) -> str:
    """Cut ``text`` to ``width`` characters, marking the cut with a dot."""
    if len(text) <= width:
        return text
    return text[: max(width - 1, 0)].rstrip() + "."
