"""Screen-budget and character-set helpers for USSD screens.

USSD travels in the GSM 7-bit default alphabet: a character outside it is dropped or turns the
screen into garbage on a basic phone, and some aggregators cap a screen at 160 characters
(including the ``CON ``/``END `` prefix). Static text is checked by the tests; dynamic text
(place names, references) goes through :func:`screen_safe` at run time.
"""

from __future__ import annotations

import unicodedata

SCREEN_LIMIT = 160

# GSM 03.38 basic table (one septet each). The escape table (``[]{}|~^\\€``) is left out on
# purpose: those cost two septets and some USSD gateways mangle them.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)

# Letters people write in French and Bambara that GSM-7 lacks, spelled the way SMS users do.
_TRANSLITERATION = str.maketrans(
    {
        "ɛ": "e",
        "Ɛ": "E",
        "ɔ": "o",
        "Ɔ": "O",
        "ɲ": "ny",
        "Ɲ": "Ny",
        "ŋ": "ng",
        "Ŋ": "Ng",
        "œ": "oe",
        "Œ": "Oe",
        "’": "'",
        "‘": "'",
        "“": '"',
        "”": '"',
        "«": '"',
        "»": '"',
        "–": "-",
        "—": "-",
    }
)


def is_gsm7(text: str) -> bool:
    return all(ch in GSM7_BASIC for ch in text)


def screen_safe(text: str) -> str:
    """``text`` in GSM-7 basic characters only: é/è/à stay, ê/ç/ï lose their accent, Bambara
    letters become their ASCII spellings, anything else unrepresentable is dropped."""
    if is_gsm7(text):
        return text
    out: list[str] = []
    for ch in text.translate(_TRANSLITERATION):
        if ch in GSM7_BASIC:
            out.append(ch)
            continue
        base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
        out.append("".join(c for c in base if c in GSM7_BASIC))
    return "".join(out)


def clip(text: str, width: int) -> str:
    """Cut ``text`` to ``width`` characters, marking the cut with a dot."""
    if len(text) <= width:
        return text
    return text[: max(width - 1, 0)].rstrip() + "."
