"""The console's languages: Babel catalogs under ops_console/translations (msgids in English,
French is the default language of the console, English and Bambara switchable).

The Bambara catalog is partial (the words an operator sees most: queue, ticket page,
buttons, statuses); every string it does not translate is shown in French, the hotline's
working language — never as a code or an English msgid.

``.po`` files are the source; ``.mo`` files are compiled from them (``make translations``,
or lazily here when a ``.mo`` is missing or older than its ``.po``), so a fresh checkout works.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from babel.support import NullTranslations, Translations
from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup

TRANSLATIONS_DIR = Path(__file__).resolve().parent / "translations"
CONSOLE_LANGUAGES = ("fr", "en", "bm")
# A language whose catalog is partial, and the language shown for what it leaves out.
PARTIAL_FALLBACK = {"bm": "fr"}
DEFAULT_LANGUAGE = "fr"


def N_(message: str) -> str:
    """Marks a string for extraction without translating it (it is translated when shown)."""
    return message


def _compile_if_needed(language: str) -> None:
    po_path = TRANSLATIONS_DIR / language / "LC_MESSAGES" / "messages.po"
    mo_path = po_path.with_suffix(".mo")
    if not po_path.exists():
        return
    if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
        return
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with po_path.open("rb") as source:
        catalog = read_po(source, locale=language)
    # write_mo leaves out an untranslated message, but not an untranslated plural (its
    # msgstr is a tuple of empty strings): drop those too, so they fall back as well.
    for message in list(catalog):
        if message.id and isinstance(message.string, tuple) and not any(message.string):
            catalog.delete(message.id, message.context)
    try:
        with mo_path.open("wb") as target:
            write_mo(target, catalog)
    except OSError:  # read-only install: the shipped .mo is used as is
        pass


@lru_cache(maxsize=8)
def translations_for(language: str) -> NullTranslations:
    if language not in CONSOLE_LANGUAGES:
        language = DEFAULT_LANGUAGE
    _compile_if_needed(language)
    loaded = Translations.load(str(TRANSLATIONS_DIR), [language], domain="messages")
    fallback = PARTIAL_FALLBACK.get(language)
    if fallback is not None:
        # Untranslated messages are left out of the compiled .mo: they fall through to French.
        loaded.add_fallback(translations_for(fallback))
    return loaded


def pick_language(*candidates: str | None) -> str:
    for candidate in candidates:
        if candidate and candidate in CONSOLE_LANGUAGES:
            return candidate
    return DEFAULT_LANGUAGE


def make_gettext(translations: NullTranslations) -> tuple[Any, Any]:
    """``gettext``/``ngettext`` for Jinja2's newstyle i18n: placeholders are filled here, and
    in autoescaped templates the values are escaped (a name typed by a sender stays text)."""

    @pass_context
    def gettext(context: Context, message: str, **variables: Any) -> str:
        text = translations.gettext(message)
        if context.eval_ctx.autoescape:
            text = Markup(text)
        return text % variables if variables else text

    @pass_context
    def ngettext(context: Context, singular: str, plural: str, num: int, **variables: Any) -> str:
        variables.setdefault("num", num)
        text = translations.ngettext(singular, plural, num)
        if context.eval_ctx.autoescape:
            text = Markup(text)
        return text % variables

    return gettext, ngettext


def translate(language: str, message: str, **variables: Any) -> str:
    """Translate outside a template (flash messages, form errors)."""
    text = translations_for(language).gettext(message)
    return text % variables if variables else text
