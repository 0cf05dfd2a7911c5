"""Canned SMS replies and macros, in French, Bambara and English.

The defaults ship with the code (data/canned_replies.json, data/macros.json). Admins and
supervisors edit them in the console; the edited sets are kept in
``$DEME_VAR_DIR/canned_replies.json`` and ``$DEME_VAR_DIR/macros.json`` because the data model
has no table for them yet (a table is proposed to the lead). ``{reference}`` is replaced with
the ticket's reference when an operator picks one.

A macro is one step an operator takes often: a reply (in the person's language), a new
status and an internal note, applied together after a confirmation (pages.ticket_macro).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TypedDict

from core.settings import get_settings

DEFAULTS_PATH = Path(__file__).resolve().parent / "data" / "canned_replies.json"
MACRO_DEFAULTS_PATH = Path(__file__).resolve().parent / "data" / "macros.json"
LANGUAGES = ("fr", "bm", "en")


class CannedReply(TypedDict):
    key: str
    title: str
    fr: str
    bm: str
    en: str


def _override_path() -> Path:
    return get_settings().var_dir / "canned_replies.json"


def _read(path: Path) -> list[CannedReply]:
    raw = json.loads(path.read_text(encoding="utf-8"))
    replies: list[CannedReply] = []
    for item in raw:
        replies.append(
            CannedReply(
                key=str(item["key"]),
                title=str(item.get("title", item["key"])),
                fr=str(item.get("fr", "")),
                bm=str(item.get("bm", "")),
                en=str(item.get("en", "")),
            )
        )
    return replies


def canned_replies() -> list[CannedReply]:
    override = _override_path()
    if override.exists():
        try:
            return _read(override)
        except (ValueError, KeyError, OSError):
            pass  # a broken file must not take the ticket page down: fall back to defaults
    return _read(DEFAULTS_PATH)


def _write(path: Path, items: object) -> None:
    """Atomic replace, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".canned-", suffix=".json")
    with os.fdopen(handle, "w", encoding="utf-8") as target:
        json.dump(items, target, ensure_ascii=False, indent=2)
    os.replace(temporary, path)


def save_canned_replies(replies: list[CannedReply]) -> None:
    _write(_override_path(), replies)


def reply_in(texts: Mapping[str, object], language: str | None, reference: str) -> tuple[str, str]:
    """The text of a reply or macro in ``language`` (French when that one is empty or the
    language unknown: the hotline's working language), ``{reference}`` filled in; and the
    language actually used."""
    used = language if language in LANGUAGES and texts.get(language or "") else "fr"
    text = str(texts.get(used) or "")
    return text.replace("{reference}", reference), used


# --- macros ---------------------------------------------------------------------------------


class Macro(TypedDict):
    key: str
    title: str
    fr: str  # the reply, per language ("" in every language: the macro sends nothing)
    bm: str
    en: str
    status: str  # a TicketStatus value, or "" to leave the status alone
    note: str  # an internal note, or ""


def _macro_override_path() -> Path:
    return get_settings().var_dir / "macros.json"


def _read_macros(path: Path) -> list[Macro]:
    raw = json.loads(path.read_text(encoding="utf-8"))
    return [
        Macro(
            key=str(item["key"]),
            title=str(item.get("title", item["key"])),
            fr=str(item.get("fr", "")),
            bm=str(item.get("bm", "")),
            en=str(item.get("en", "")),
            status=str(item.get("status", "")),
            note=str(item.get("note", "")),
        )
        for item in raw
    ]


def macros() -> list[Macro]:
    override = _macro_override_path()
    if override.exists():
        try:
            return _read_macros(override)
        except (ValueError, KeyError, OSError):
            pass  # as for canned replies: a broken file falls back to the defaults
    return _read_macros(MACRO_DEFAULTS_PATH)


def macro_by_key(key: str) -> Macro | None:
    return next((macro for macro in macros() if macro["key"] == key), None)


def save_macros(items: list[Macro]) -> None:
    _write(_macro_override_path(), items)
