"""The USSD menu as a pure state machine: a state, one input, a next state and a screen.

Nothing here touches the network or the database. The service (``gateway.ussd.service``) feeds
inputs in, performs the :class:`Action` the engine asks for at the end of a path (create the
ticket, register the household, ...) and renders the final screen with :meth:`MenuEngine.end`.

Navigation: ``0`` goes back one screen, ``00`` to the main menu, on every screen. Aggregators
send the whole ``*``-joined path on each hop; resolving back/home *over that path* is the same
as keeping a stack of the screens the caller walked through, which is what :class:`MenuState`
does (so a typed name containing ``*`` or a resumed session need no path rewriting).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from typing import Any

from gateway.ussd.i18n import LANGUAGES, translate
from gateway.ussd.places import LABEL_WIDTH, PlaceDirectory, PlaceItem
from gateway.ussd.text import SCREEN_LIMIT, clip, screen_safe
from models.enums import Language, TicketCategory

# A caller may paste or type anything; nothing longer is ever needed to choose or name a place.
MAX_INPUT = 80
MAX_STACK = 24
HOUSEHOLD_MIN, HOUSEHOLD_MAX = 1, 99
# One option number is kept free for "next page"; lists show at most this many items a page.
NEXT_PAGE_KEY = "9"
MAX_PAGE_ITEMS = 8
BACK, HOME = "0", "00"


class Screen(StrEnum):
    LANGUAGE = "lang"
    RESUME = "resume"
    MAIN = "main"
    HELP = "help"
    # "Safety": about the caller, or about a person working for an organisation (PSEA,
    # worded so that a screen read over the shoulder names nothing).
    PROTECTION_TOPIC = "prot_topic"
    PROTECTION_SAFE = "prot_safe"
    PROTECTION_WHEN = "prot_when"
    STOP = "stop"
    ERASE = "erase"
    PLACE_MODE = "place_mode"
    REGIONS = "regions"
    CERCLES = "cercles"
    PLACE_TYPE = "place_type"
    PLACE_CONFIRM = "place_confirm"
    SIZE = "size"
    CONFIRM = "confirm"


class Action(StrEnum):
    """What the service must do in the database once a path is complete."""

    REGISTER = "register"
    HELP = "help"
    PROTECTION = "protection"
    STATUS = "status"
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    ERASE = "erase"


class Flow(StrEnum):
    REGISTER = "reg"
    HELP = "help"
    PROTECTION = "prot"


HELP_CATEGORIES: dict[str, TicketCategory] = {
    "1": TicketCategory.HEALTH,
    "2": TicketCategory.WASH,
    "3": TicketCategory.SHELTER_NFI,
}
CALLBACK_TIMES: dict[str, str] = {"1": "morning", "2": "afternoon", "3": "evening"}
LANGUAGE_CHOICES: dict[str, Language] = {
    "1": Language.FRENCH,
    "2": Language.BAMBARA,
    "3": Language.ENGLISH,
}
# Screens worth offering to resume: anything past the first choice of a path.
RESUMABLE = frozenset(Screen) - {Screen.LANGUAGE, Screen.RESUME, Screen.MAIN}
_NO_FOOTER = frozenset({Screen.LANGUAGE, Screen.RESUME, Screen.MAIN})
_NOTICES = ("notice.invalid", "notice.size", "notice.not_found")
_DIGITS = re.compile(r"\d+")


@dataclass
class MenuState:
    """Everything about one caller's walk through the menu, small enough for one Redis value.

    ``last_text`` is the aggregator's ``text`` at the previous hop of *this* session: the new
    input is what was appended to it. ``out`` is the last answer, replayed when an aggregator
    retries a hop, and after ``END`` (so a retried final hop never writes twice).
    """

    session_id: str
    screen: Screen
    language: Language | None = None
    contact_id: int | None = None
    data: dict[str, Any] = field(default_factory=dict)
    stack: list[tuple[Screen, dict[str, Any]]] = field(default_factory=list)
    last_text: str = ""
    out: str = ""
    done: bool = False
    hops: int = 0
    started: float = 0.0
    updated: float = 0.0
    # Set when the caller picked a language during this hop: the service saves it on the Contact.
    language_changed: bool = False

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "sid": self.session_id,
            "sc": self.screen.value,
            "lang": self.language.value if self.language else None,
            "cid": self.contact_id,
            "d": self.data,
            "st": [[screen.value, data] for screen, data in self.stack],
            "t": self.last_text,
            "out": self.out,
            "done": self.done,
            "h": self.hops,
            "t0": self.started,
            "t1": self.updated,
        }

    @classmethod
    def from_json(cls, raw: str | bytes) -> MenuState | None:
        try:
            doc = json.loads(raw)
        except ValueError:
            return None
        return cls.from_dict(doc) if isinstance(doc, dict) else None

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> MenuState | None:
        """None for anything unreadable (an older format, a corrupted value): the caller then
        simply starts again instead of getting an error."""
        try:
            return cls(
                session_id=str(doc["sid"]),
                screen=Screen(doc["sc"]),
                language=Language(doc["lang"]) if doc.get("lang") else None,
                contact_id=int(doc["cid"]) if doc.get("cid") is not None else None,
                data=dict(doc.get("d") or {}),
                stack=[(Screen(s), dict(d)) for s, d in doc.get("st") or []],
                last_text=str(doc.get("t") or ""),
                out=str(doc.get("out") or ""),
                done=bool(doc.get("done")),
                hops=int(doc.get("h") or 0),
                started=float(doc.get("t0") or 0.0),
                updated=float(doc.get("t1") or 0.0),
            )
        except (ValueError, TypeError, KeyError):
            return None

    @property
    def resumable(self) -> bool:
        return not self.done and self.screen in RESUMABLE


@dataclass(frozen=True, slots=True)
class Step:
    """The outcome of one input: an action to perform, or a notice to show on the screen."""

    action: Action | None = None
    notice: str | None = None


def parse_household_size(text: str) -> int | None:
    """1..99 from "5", " 5 ", "5 personnes", "mogo 7"; None when there is not exactly one number."""
    numbers = _DIGITS.findall(text)
    if len(numbers) != 1 or len(numbers[0]) > 2:
        return None
    value = int(numbers[0])
    return value if HOUSEHOLD_MIN <= value <= HOUSEHOLD_MAX else None


def _con(body: str) -> str:
    return _fit("CON " + body)


def _fit(screen: str) -> str:
    # Static screens are checked by the tests; this only guards dynamic text (a long place
    # name, many tickets) so an over-long screen is cut rather than rejected by the operator.
    return screen if len(screen) <= SCREEN_LIMIT else clip(screen, SCREEN_LIMIT)


class MenuEngine:
    def __init__(self, places: PlaceDirectory) -> None:
        self.places = places

    # -- states ----------------------------------------------------------------------------

    def new_state(
        self,
        session_id: str,
        *,
        language: Language | None,
        contact_id: int | None,
        now: float,
        resume_from: MenuState | None = None,
    ) -> MenuState:
        state = MenuState(
            session_id=session_id,
            screen=Screen.MAIN if language else Screen.LANGUAGE,
            language=language,
            contact_id=contact_id,
            started=now,
            updated=now,
        )
        if resume_from is not None and resume_from.resumable:
            state.screen = Screen.RESUME
            state.data = {
                "saved": {
                    "sc": resume_from.screen.value,
                    "d": resume_from.data,
                    "st": [[s.value, d] for s, d in resume_from.stack],
                }
            }
            if state.language is None:
                state.language = resume_from.language
        return state

    def _go(self, state: MenuState, screen: Screen, **updates: Any) -> Step:
        state.stack.append((state.screen, dict(state.data)))
        if len(state.stack) > MAX_STACK:
            del state.stack[0]
        state.screen = screen
        state.data.update(updates)
        return Step()

    def _home(self, state: MenuState) -> None:
        state.stack.clear()
        state.data = {}
        state.screen = Screen.MAIN if state.language else Screen.LANGUAGE

    def _back(self, state: MenuState) -> None:
        if state.stack:
            state.screen, state.data = state.stack.pop()
        elif state.screen is Screen.RESUME:
            pass  # nothing behind the resume question: it stays until answered
        else:
            self._home(state)

    # -- input -----------------------------------------------------------------------------

    def feed(self, state: MenuState, raw: str) -> Step:
        """Apply one input to ``state`` (in place). Never raises on any input."""
        token = raw.strip()[:MAX_INPUT]
        if token == HOME:
            self._home(state)
            return Step()
        if token == BACK:
            self._back(state)
            return Step()
        handler = getattr(self, f"_on_{state.screen.value}")
        step: Step = handler(state, token)
        return step

    def _on_lang(self, state: MenuState, token: str) -> Step:
        language = LANGUAGE_CHOICES.get(token)
        if language is None:
            return Step(notice="notice.invalid")
        state.language = language
        state.language_changed = True
        self._home(state)
        return Step()

    def _on_resume(self, state: MenuState, token: str) -> Step:
        if token == "1":
            saved = state.data.get("saved") or {}
            try:
                screen = Screen(saved["sc"])
                stack = [(Screen(s), dict(d)) for s, d in saved.get("st") or []]
            except (KeyError, ValueError, TypeError):
                self._home(state)
                return Step()
            state.screen, state.data, state.stack = screen, dict(saved.get("d") or {}), stack
            return Step()
        if token == "2":
            self._home(state)
            return Step()
        return Step(notice="notice.invalid")

    def _on_main(self, state: MenuState, token: str) -> Step:
        if token == "1":
            return self._go(state, Screen.PLACE_MODE, flow=Flow.REGISTER.value)
        if token == "2":
            return self._go(state, Screen.HELP)
        if token == "3":
            return self._go(state, Screen.PROTECTION_TOPIC, flow=Flow.PROTECTION.value)
        if token == "4":
            return Step(action=Action.STATUS)
        if token == "5":
            return self._go(state, Screen.STOP)
        if token == "6":
            return self._go(state, Screen.LANGUAGE)
        return Step(notice="notice.invalid")

    def _on_help(self, state: MenuState, token: str) -> Step:
        category = HELP_CATEGORIES.get(token)
        if category is None:
            return Step(notice="notice.invalid")
        return self._go(state, Screen.PLACE_MODE, flow=Flow.HELP.value, cat=category.value)

    def _on_prot_topic(self, state: MenuState, token: str) -> Step:
        if token == "1":
            return self._go(state, Screen.PROTECTION_SAFE)
        if token == "2":
            return self._go(state, Screen.PROTECTION_SAFE, psea=True)
        return Step(notice="notice.invalid")

    def _on_prot_safe(self, state: MenuState, token: str) -> Step:
        if token == "1":
            return self._go(state, Screen.PROTECTION_WHEN, callback=True)
        if token == "2":
            state.data["callback"] = False
            return Step(action=Action.PROTECTION)
        return Step(notice="notice.invalid")

    def _on_prot_when(self, state: MenuState, token: str) -> Step:
        when = CALLBACK_TIMES.get(token)
        if when is None:
            return Step(notice="notice.invalid")
        state.data["when"] = when
        return Step(action=Action.PROTECTION)

    def _on_stop(self, state: MenuState, token: str) -> Step:
        if token == "1":
            return Step(action=Action.OPT_OUT)
        if token == "2":
            return Step(action=Action.OPT_IN)
        if token == "3":
            return self._go(state, Screen.ERASE)
        return Step(notice="notice.invalid")

    def _on_erase(self, state: MenuState, token: str) -> Step:
        if token == "1":
            return Step(action=Action.ERASE)
        if token == "2":
            self._back(state)
            return Step()
        return Step(notice="notice.invalid")

    def _on_place_mode(self, state: MenuState, token: str) -> Step:
        if token == "1":
            return self._go(state, Screen.REGIONS, page=0)
        if token == "2":
            return self._go(state, Screen.PLACE_TYPE)
        return Step(notice="notice.invalid")

    def _pick(self, state: MenuState, token: str, items: tuple[PlaceItem, ...]) -> str | None:
        """The code chosen on a paginated list, after moving pages for "9"; None if invalid."""
        page = int(state.data.get("page") or 0)
        pages = self._pages(state.language, state.screen, state.data, items)
        page = min(max(page, 0), len(pages) - 1)
        start, stop = pages[page]
        if token == NEXT_PAGE_KEY and page + 1 < len(pages):
            self._go(state, state.screen, page=page + 1)
            return ""
        if token.isdigit() and 1 <= int(token) <= stop - start:
            return items[start + int(token) - 1].code
        return None

    def _after_place(self, state: MenuState, code: str) -> Step:
        return self._go(state, Screen.SIZE, place=code)

    def _on_regions(self, state: MenuState, token: str) -> Step:
        code = self._pick(state, token, self.places.regions())
        if code is None:
            return Step(notice="notice.invalid")
        if code == "":
            return Step()
        if not self.places.children(code):
            return self._after_place(state, code)
        return self._go(state, Screen.CERCLES, region=code, page=0)

    def _cercle_items(self, state: MenuState) -> tuple[PlaceItem, ...]:
        region = str(state.data.get("region") or "")
        whole = PlaceItem(region, translate("place.whole", state.language))
        return (whole, *self.places.children(region))

    def _on_cercles(self, state: MenuState, token: str) -> Step:
        code = self._pick(state, token, self._cercle_items(state))
        if code is None:
            return Step(notice="notice.invalid")
        if code == "":
            return Step()
        return self._after_place(state, code)

    def _on_place_type(self, state: MenuState, token: str) -> Step:
        code = self.places.resolve(token) if len(token) >= 2 else None
        if code is None:
            return Step(notice="notice.not_found")
        return self._go(state, Screen.PLACE_CONFIRM, cand=code)

    def _on_place_confirm(self, state: MenuState, token: str) -> Step:
        if token == "1":
            return self._after_place(state, str(state.data.get("cand")))
        if token == "2":
            self._back(state)
            return Step()
        return Step(notice="notice.invalid")

    def _on_size(self, state: MenuState, token: str) -> Step:
        size = parse_household_size(token)
        if size is None:
            return Step(notice="notice.size")
        return self._go(state, Screen.CONFIRM, size=size)

    def _on_confirm(self, state: MenuState, token: str) -> Step:
        if token != "1":
            return Step(notice="notice.invalid")
        flow = state.data.get("flow")
        return Step(action=Action.REGISTER if flow == Flow.REGISTER.value else Action.HELP)

    # -- screens ---------------------------------------------------------------------------

    def render(self, state: MenuState, notice: str | None = None) -> str:
        """The ``CON`` screen for ``state`` (with a one-line notice such as "Choix invalide")."""
        language = state.language
        body = self._body(state)
        if notice and state.screen is Screen.MAIN:
            # The full main menu leaves no room for a notice: it takes the title's line.
            body = body.split("\n", 1)[-1]
        parts = [translate(notice, language)] if notice else []
        parts.append(body)
        if state.screen not in _NO_FOOTER:
            parts.append(translate("nav.footer", language))
        return _con("\n".join(parts))

    def _body(self, state: MenuState) -> str:
        screen, language, data = state.screen, state.language, state.data
        if screen is Screen.LANGUAGE:
            return translate("lang.prompt", language)
        if screen is Screen.RESUME:
            return translate("resume", language)
        if screen is Screen.MAIN:
            return translate("main", language)
        if screen is Screen.HELP:
            return translate("help.menu", language)
        if screen is Screen.PROTECTION_TOPIC:
            return translate("prot.topic", language)
        if screen is Screen.PROTECTION_SAFE:
            return translate("prot.safe", language)
        if screen is Screen.PROTECTION_WHEN:
            return translate("prot.when", language)
        if screen is Screen.STOP:
            return translate("stop.menu", language)
        if screen is Screen.ERASE:
            return translate("erase.confirm", language)
        if screen is Screen.PLACE_MODE:
            return translate("place.mode", language)
        if screen is Screen.REGIONS:
            return self._list_body(state, self.places.regions())
        if screen is Screen.CERCLES:
            return self._list_body(state, self._cercle_items(state))
        if screen is Screen.PLACE_TYPE:
            return translate("place.type", language)
        if screen is Screen.PLACE_CONFIRM:
            code = str(data.get("cand"))
            region = self.places.region_label(code)
            return translate(
                "place.confirm",
                language,
                place=self.places.label(code),
                parent=f" ({region})" if region else "",
            )
        if screen is Screen.SIZE:
            return translate("size.prompt", language)
        # Screen.CONFIRM
        place = clip(self.places.label(str(data.get("place"))), LABEL_WIDTH)
        if data.get("flow") == Flow.REGISTER.value:
            return translate("confirm.reg", language, place=place, size=data.get("size"))
        return translate(
            "confirm.help",
            language,
            category=translate(f"cat.{data.get('cat')}", language),
            place=place,
            size=data.get("size"),
        )

    def _list_header(self, language: Language | None, screen: Screen, data: dict[str, Any]) -> str:
        if screen is Screen.CERCLES:
            region = self.places.label(str(data.get("region")))
            return translate("place.cercles", language, region=region)
        return translate("place.regions", language)

    def _list_body(self, state: MenuState, items: tuple[PlaceItem, ...]) -> str:
        pages = self._pages(state.language, state.screen, state.data, items)
        page = min(max(int(state.data.get("page") or 0), 0), len(pages) - 1)
        start, stop = pages[page]
        lines = [self._list_header(state.language, state.screen, state.data)]
        lines.extend(f"{n} {item.label}" for n, item in enumerate(items[start:stop], 1))
        if page + 1 < len(pages):
            lines.append(translate("nav.next", state.language))
        return "\n".join(lines)

    def _pages(
        self,
        language: Language | None,
        screen: Screen,
        data: dict[str, Any],
        items: tuple[PlaceItem, ...],
    ) -> tuple[tuple[int, int], ...]:
        header = self._list_header(language, screen, data)
        return _paginate(language, header, tuple(item.label for item in items))

    # -- final screens ---------------------------------------------------------------------

    def end(self, language: Language | None, key: str, **params: object) -> str:
        """An ``END`` screen; dynamic values are made GSM-7 safe and the whole fits the budget."""
        safe = {k: screen_safe(str(v)) for k, v in params.items()}
        return _fit("END " + translate(key, language, **safe))

    def end_status(self, language: Language | None, tickets: list[tuple[str, str, str]]) -> str:
        """``tickets`` as (reference, category label key, status) – newest first; as many as fit."""
        if not tickets:
            return self.end(language, "end.status.none")
        text = "END " + translate("end.status.header", language)
        for reference, category_key, status in tickets:
            line = (
                f"\n{screen_safe(reference)} {translate(category_key, language)}: "
                f"{translate(f'status.{status}', language)}"
            )
            if len(text) + len(line) > SCREEN_LIMIT:
                break
            text += line
        return text


@lru_cache(maxsize=512)
def _paginate(
    language: Language | None, header: str, labels: tuple[str, ...]
) -> tuple[tuple[int, int], ...]:
    """Split ``labels`` into pages that fit one screen with the worst-case notice line, the
    "next" line and the navigation footer. Pages are (start, stop) index ranges."""
    fixed = (
        len("CON ")
        + len(header)
        + max(len(translate(key, language)) for key in _NOTICES)
        + 1
        + len(translate("nav.next", language))
        + 1
        + len(translate("nav.footer", language))
        + 1
    )
    pages: list[tuple[int, int]] = []
    start = 0
    while start < len(labels):
        stop, used = start, fixed
        while stop < len(labels) and stop - start < MAX_PAGE_ITEMS:
            line = len(f"\n{stop - start + 1} {labels[stop]}")
            if used + line > SCREEN_LIMIT and stop > start:
                break
            used += line
            stop += 1
        pages.append((start, stop))
        start = stop
    return tuple(pages) or ((0, 0),)


def all_languages() -> tuple[Language, ...]:
    return LANGUAGES
