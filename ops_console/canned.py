"""Canned SMS replies in French, Bambara and English.

The defaults ship with the code (data/canned_replies.json). Admins edit them in the console;
the edited set is kept in ``$DEME_VAR_DIR/canned_replies.json`` because the data model has no
table for them yet (a ``canned_replies`` table is proposed to the lead). ``{reference}`` is
replaced with the ticket's reference when an operator picks one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TypedDict

from core.settings import get_settings

DEFAULTS_PATH = Path(__file__).resolve().parent / "data" / "canned_replies.json"
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


def save_canned_replies(replies: list[CannedReply]) -> None:
    """Atomic replace, so a reader never sees half a file."""
    path = _override_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".canned-", suffix=".json")
    with os.fdopen(handle, "w", encoding="utf-8") as target:
        json.dump(replies, target, ensure_ascii=False, indent=2)
    os.replace(temporary, path)
