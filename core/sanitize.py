"""The one home for what every inbound edge does to untrusted values.

PostgreSQL ``text`` cannot hold NUL, UTF-8 cannot hold a lone surrogate (JSON ``"\\ud800"``),
``INTEGER`` columns stop at 2³¹−1, and ``str.isdigit()`` / ``int()`` accept ``¹`` and ``٣``.
Webhooks from providers *repair* text (nothing accepted is lost); the API and the console
*reject* it, naming the field (see ``ops_console.web``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Bounds of the INTEGER columns every id, size and count is stored in (PostgreSQL and SQLite).
INT32_MAX = 2**31 - 1
REPLACEMENT = "\ufffd"

_ASCII_DIGITS = re.compile(r"[0-9]{1,10}")
_SURROGATE = re.compile("[\ud800-\udfff]")
# Characters XML 1.0 (so XLSX) cannot carry: C0 controls except tab/LF/CR, lone surrogates,
# U+FFFE/U+FFFF.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# Spreadsheets (Excel, LibreOffice, Google Sheets) evaluate cells starting with these.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n")


def parse_id(text: str | None, *, maximum: int = INT32_MAX) -> int | None:
    """An id or count written in ASCII digits within the column's range, else None."""
    if text is None:
        return None
    text = text.strip()
    if not _ASCII_DIGITS.fullmatch(text):
        return None
    value = int(text)
    return value if value <= maximum else None


def is_bad_text(text: str) -> bool:
    """True when ``text`` holds a NUL or a lone surrogate (cannot be stored)."""
    return "\x00" in text or _SURROGATE.search(text) is not None


def repair_text(text: str) -> tuple[str, bool]:
    """Remove NUL and replace lone surrogates with U+FFFD; returns (text, changed)."""
    if not is_bad_text(text):
        return text, False
    return _SURROGATE.sub(REPLACEMENT, text.replace("\x00", "")), True


def bad_fields(items: Iterable[tuple[str, object]]) -> list[str]:
    """Names of the string values (or names) that hold NUL or a lone surrogate."""
    names: list[str] = []
    for name, value in items:
        if is_bad_text(name) or (isinstance(value, str) and is_bad_text(value)):
            shown = repair_text(name)[0]
            if shown not in names:
                names.append(shown)
    return names


def spreadsheet_cell(value: str) -> str:
    """A cell that a spreadsheet shows as text: XML-illegal characters replaced, formula
    prefixes neutralised with a leading apostrophe (``+223 7• •• •• 12`` stays readable)."""
    value = _XML_ILLEGAL.sub(REPLACEMENT, value)
    if value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def is_id(text: str | None) -> bool:
    """``parse_id(text) is not None``: then ``int(text)`` is safe for an INTEGER column."""
    return parse_id(text) is not None
