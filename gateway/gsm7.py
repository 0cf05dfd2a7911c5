"""GSM 03.38 / 3GPP TS 23.038: which text fits the 7-bit alphabet, and how many SMS it costs.

A GSM-7 message costs 160 septets in one SMS, or 153 per part once concatenated (the user
data header eats 7); an extension-table character (``€ [ ] { } | ~ ^ \\`` and form feed) costs
two septets (escape + char), and a careful splitter never cuts such a pair. Anything outside
both tables forces UCS-2 for the whole message: 70 UTF-16 code units, or 67 per part, and a
surrogate pair (an emoji) is never cut either.

Capital ``Ç`` is in the basic table (0x09, as the ETSI table has it); lowercase ``ç`` is not
and is transliterated to ``c``. Some handsets show 0x09 as ``ç``: we stay with the standard.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from models.enums import MessageEncoding

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")
GSM7_ALL = GSM7_BASIC | GSM7_EXTENSION

GSM7_SINGLE = 160
GSM7_PART = 153
UCS2_SINGLE = 70
UCS2_PART = 67

# Characters French and Bambara writers use that GSM-7 lacks, mapped to what people type on
# basic phones anyway (see shared/reference/bambara.md: ɛ→e, ɔ→o, ɲ→ny, ŋ→ng).
_TRANSLITERATION: dict[str, str] = {
    "ç": "c",
    "â": "a",
    "ê": "e",
    "ë": "e",
    "î": "i",
    "ï": "i",
    "ô": "o",
    "û": "u",
    "ÿ": "y",
    "á": "a",
    "í": "i",
    "ó": "o",
    "ú": "u",
    "ã": "a",
    "õ": "o",
    "œ": "oe",
    "Œ": "OE",
    "À": "A",
    "Â": "A",
    "Á": "A",
    "È": "E",
    "Ê": "E",
    "Ë": "E",
    "Î": "I",
    "Ï": "I",
    "Í": "I",
    "Ô": "O",
    "Ó": "O",
    "Ù": "U",
    "Û": "U",
    "Ú": "U",
    "Ÿ": "Y",
    "ɛ": "e",
    "Ɛ": "E",
    "ɔ": "o",
    "Ɔ": "O",
    "ɲ": "ny",
    "Ɲ": "Ny",
    "ŋ": "ng",
    "Ŋ": "Ng",
    "«": '"',
    "»": '"',
    "“": '"',
    "”": '"',
    "„": '"',
    "‘": "'",
    "’": "'",
    "‚": "'",
    "–": "-",
    "—": "-",
    "‑": "-",
    "…": "...",
    "\u00a0": " ",  # no-break space (French typography before ; : ! ?)
    "\u202f": " ",  # narrow no-break space
    "\t": " ",
}


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """What a body costs: ``length`` in characters, ``units`` in septets (GSM-7) or UTF-16
    code units (UCS-2), and the number of SMS parts."""

    encoding: MessageEncoding
    segments: int
    length: int
    units: int


def is_gsm7(body: str) -> bool:
    return set(body) <= GSM7_ALL


def _septets(char: str) -> int:
    return 2 if char in GSM7_EXTENSION else 1


def _utf16_units(char: str) -> int:
    return 2 if ord(char) > 0xFFFF else 1


def _count_parts(costs: list[int], single: int, part: int) -> int:
    total = sum(costs)
    if total == 0:
        return 1
    if total <= single:
        return 1
    parts, used = 1, 0
    for cost in costs:
        # A multi-unit character (escape pair, surrogate pair) never straddles two parts.
        if used + cost > part:
            parts += 1
            used = 0
        used += cost
    return parts


def measure(body: str) -> SegmentInfo:
    """Encoding and segment count of ``body`` exactly as it would be sent (no transliteration)."""
    if is_gsm7(body):
        costs = [_septets(c) for c in body]
        return SegmentInfo(
            MessageEncoding.GSM7,
            _count_parts(costs, GSM7_SINGLE, GSM7_PART),
            len(body),
            sum(costs),
        )
    costs = [_utf16_units(c) for c in body]
    return SegmentInfo(
        MessageEncoding.UCS2,
        _count_parts(costs, UCS2_SINGLE, UCS2_PART),
        len(body),
        sum(costs),
    )


def to_gsm7(body: str) -> str:
    """Transliterate what has a customary ASCII/GSM-7 spelling; leave the rest untouched.

    Characters with no sensible equivalent (emoji, Arabic, Tifinagh) stay as they are, so the
    message falls back to UCS-2 rather than losing meaning.
    """
    if is_gsm7(body):
        return body
    # NFC first so "e" + combining acute becomes the GSM-7 "é" instead of two odd characters.
    body = unicodedata.normalize("NFC", body)
    out: list[str] = []
    for char in body:
        if char in GSM7_ALL:
            out.append(char)
            continue
        mapped = _TRANSLITERATION.get(char)
        if mapped is not None:
            out.append(mapped)
            continue
        # Latin letters with other diacritics (ā, ǹ, ẹ...): keep the base letter if that is
        # GSM-7; tone marks are never written in SMS Bambara anyway.
        if unicodedata.combining(char):
            continue  # a tone mark left over after NFC (ɛ̀, ɔ́): dropped, as people type it
        decomposed = unicodedata.normalize("NFD", char)
        base = decomposed[0]
        if len(decomposed) > 1 and base in GSM7_BASIC and base.isalpha():
            out.append(base)
        else:
            out.append(char)
    return "".join(out)
