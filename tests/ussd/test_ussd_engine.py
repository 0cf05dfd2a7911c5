"""The menu engine and its catalogs, without HTTP or a database.

The whole-tree walk explores every state the menu can reach in each language — every list
page of every region, every place the gazetteer knows typed by name, every notice — and
checks each screen (and each final screen with worst-case values) against the 160-character,
GSM-7-only budget.
"""

from __future__ import annotations

import json
import re
from collections import deque
from string import Formatter

import pytest
from ussd.helpers import check_screen, gsm7_problems

from gateway.ussd.engine import (
    RESUMABLE,
    Action,
    MenuEngine,
    MenuState,
    Screen,
    parse_household_size,
)
from gateway.ussd.i18n import CATALOG_DIR, LANGUAGES, catalog, translate
from gateway.ussd.places import PlaceDirectory
from models.enums import Language, TicketCategory, TicketStatus

LONGEST_REFERENCE = "T-WWWWW"


@pytest.fixture(scope="module")
def places() -> PlaceDirectory:
    return PlaceDirectory()


@pytest.fixture(scope="module")
def engine(places: PlaceDirectory) -> MenuEngine:
    return MenuEngine(places)


def fresh(engine: MenuEngine, language: Language | None = Language.FRENCH) -> MenuState:
    return engine.new_state("s1", language=language, contact_id=None, now=1000.0)


def copy(state: MenuState) -> MenuState:
    clone = MenuState.from_json(state.to_json())
    assert clone is not None
    return clone


def feed_all(engine: MenuEngine, state: MenuState, *inputs: str) -> str:
    notice = None
    for text in inputs:
        step = engine.feed(state, text)
        assert step.action is None, (text, step)
        notice = step.notice
    return engine.render(state, notice)


# -- catalogs --------------------------------------------------------------------------------


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in Formatter().parse(text) if name}


def test_catalogs_have_the_same_keys_and_placeholders() -> None:
    files = sorted(p.stem for p in CATALOG_DIR.glob("*.json"))
    assert files == sorted(language.value for language in LANGUAGES)
    reference = catalog(Language.FRENCH)
    for language in LANGUAGES:
        entries = catalog(language)
        assert entries.keys() == reference.keys(), language
        for key, text in entries.items():
            assert _placeholders(text) == _placeholders(reference[key]), (language, key)


@pytest.mark.parametrize("language", LANGUAGES)
def test_catalog_text_is_gsm7(language: Language) -> None:
    raw = json.loads((CATALOG_DIR / f"{language.value}.json").read_text(encoding="utf-8"))
    for key, template in raw.items():
        text = re.sub(r"\{[a-z_]+\}", "", template)  # placeholders are filled in at run time
        assert not gsm7_problems(text), (language, key, gsm7_problems(text))
        # The characters French writers reach for that GSM-7 lacks, and Bambara's own letters.
        assert not set(text) & set("êçœâîôûëïÿ’ɛɔɲŋ"), (language, key)


def test_bambara_menu_is_written_in_bambara() -> None:
    # Guard against a catalog accidentally copied from French or English.
    assert translate("main", Language.BAMBARA) != translate("main", Language.FRENCH)
    assert "nyininkali" in translate("main", Language.BAMBARA)


# -- small pieces ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5", 5),
        (" 12 ", 12),
        ("1", 1),
        ("99", 99),
        ("7 personnes", 7),
        ("mogo 7", 7),
        ("0", None),
        ("100", None),
        ("007", None),
        ("", None),
        ("cinq", None),
        ("5 ou 6", None),
        ("-3", 3),
    ],
)
def test_parse_household_size(text: str, expected: int | None) -> None:
    assert parse_household_size(text) == expected


def test_state_round_trips_and_garbage_state_is_ignored(engine: MenuEngine) -> None:
    state = fresh(engine)
    feed_all(engine, state, "2", "1", "1", "9")
    again = MenuState.from_json(state.to_json())
    assert again == state
    assert MenuState.from_json(b"not json") is None
    assert MenuState.from_json('{"sid": "x", "sc": "nowhere"}') is None
    assert MenuState.from_json("[1, 2]") is None


def test_back_and_home(engine: MenuEngine) -> None:
    state = fresh(engine)
    feed_all(engine, state, "2", "3", "1")  # help → shelter → choose from the list
    assert state.screen is Screen.REGIONS
    feed_all(engine, state, "0")
    assert state.screen is Screen.PLACE_MODE
    feed_all(engine, state, "0", "0")
    assert state.screen is Screen.MAIN
    feed_all(engine, state, "0")  # nothing behind the main menu: it stays
    assert state.screen is Screen.MAIN
    feed_all(engine, state, "1", "2", "00")
    assert state.screen is Screen.MAIN
    assert state.data == {} and state.stack == []


def test_home_before_a_language_is_chosen_is_the_language_screen(engine: MenuEngine) -> None:
    state = fresh(engine, language=None)
    assert state.screen is Screen.LANGUAGE
    for text in ("00", "0", "7", ""):
        engine.feed(state, text)
        assert state.screen is Screen.LANGUAGE
    engine.feed(state, "2")
    assert (state.screen, state.language, state.language_changed) == (
        Screen.MAIN,
        Language.BAMBARA,
        True,
    )


def test_invalid_choice_reshows_the_same_screen_with_a_notice(engine: MenuEngine) -> None:
    state = fresh(engine)
    before = feed_all(engine, state, "2")
    step = engine.feed(state, "7")
    assert step.notice == "notice.invalid" and state.screen is Screen.HELP
    screen = engine.render(state, step.notice)
    assert screen == "CON Choix invalide\n" + before.removeprefix("CON ")


def test_region_pages_cover_every_region_once(engine: MenuEngine, places: PlaceDirectory) -> None:
    for language in LANGUAGES:
        state = fresh(engine, language)
        feed_all(engine, state, "1", "1")
        seen: list[str] = []
        while True:
            screen = engine.render(state)
            seen.extend(re.findall(r"^[1-8] (.+)$", screen, flags=re.MULTILINE))
            if not re.search(r"^9 ", screen, flags=re.MULTILINE):
                break
            feed_all(engine, state, "9")
        assert seen == [item.label for item in places.regions()], language


def test_pagination_next_then_back(engine: MenuEngine) -> None:
    state = fresh(engine)
    first = feed_all(engine, state, "1", "1")
    second = feed_all(engine, state, "9")
    assert first != second
    assert feed_all(engine, state, "0") == first
    # The 2nd item of the 2nd page is a different region than the 2nd of the 1st page.
    feed_all(engine, state, "9", "2")
    assert state.screen is Screen.CERCLES
    assert state.data["region"] == "ML02"  # Koulikoro


def test_typed_place_with_confirmation(engine: MenuEngine) -> None:
    state = fresh(engine)
    screen = feed_all(engine, state, "2", "2", "2", "Sevare")
    assert state.screen is Screen.PLACE_CONFIRM
    assert "Sévaré (Mopti)" in screen
    feed_all(engine, state, "2")  # no: type again
    assert state.screen is Screen.PLACE_TYPE
    step = engine.feed(state, "qqqqqqq")
    assert step.notice == "notice.not_found" and state.screen is Screen.PLACE_TYPE
    feed_all(engine, state, "Tombouctou", "1", "6")
    assert state.screen is Screen.CONFIRM
    assert state.data == {
        "flow": "help",
        "cat": "wash",
        "cand": "ML06",
        "place": "ML06",
        "size": 6,
    }
    assert engine.feed(state, "1").action is Action.HELP


def test_protection_path_asks_only_about_the_call_back(engine: MenuEngine) -> None:
    state = fresh(engine)
    feed_all(engine, state, "3")
    assert state.screen is Screen.PROTECTION_TOPIC
    feed_all(engine, state, "1")  # about the caller: an ordinary protection concern
    assert state.screen is Screen.PROTECTION_SAFE
    feed_all(engine, state, "1")
    assert state.screen is Screen.PROTECTION_WHEN
    step = engine.feed(state, "3")
    assert step.action is Action.PROTECTION
    assert state.data == {"flow": "prot", "callback": True, "when": "evening"}
    state = fresh(engine)
    feed_all(engine, state, "3", "1")
    assert engine.feed(state, "2").action is Action.PROTECTION
    assert state.data == {"flow": "prot", "callback": False}


def test_a_problem_with_a_person_working_for_an_organisation_is_psea(engine: MenuEngine) -> None:
    state = fresh(engine)
    feed_all(engine, state, "3", "2")  # "a person working for an organisation"
    assert state.screen is Screen.PROTECTION_SAFE
    assert engine.feed(state, "2").action is Action.PROTECTION
    assert state.data == {"flow": "prot", "psea": True, "callback": False}
    state = fresh(engine)
    feed_all(engine, state, "3", "2", "1")
    assert engine.feed(state, "2").action is Action.PROTECTION
    assert state.data == {"flow": "prot", "psea": True, "callback": True, "when": "afternoon"}


def test_resume_offers_to_continue_where_it_stopped(engine: MenuEngine) -> None:
    dropped = fresh(engine)
    size_screen = feed_all(engine, dropped, "1", "1", "6", "3")
    assert dropped.screen is Screen.SIZE and dropped.resumable
    state = engine.new_state(
        "s2", language=Language.FRENCH, contact_id=None, now=1100.0, resume_from=dropped
    )
    assert state.screen is Screen.RESUME
    assert feed_all(engine, state, "1") == size_screen
    assert state.data == dropped.data and state.stack == dropped.stack
    feed_all(engine, state, "0")
    assert state.screen is Screen.CERCLES
    again = engine.new_state(
        "s3", language=Language.FRENCH, contact_id=None, now=1100.0, resume_from=dropped
    )
    feed_all(engine, again, "2")
    assert again.screen is Screen.MAIN and again.data == {}
    # The main menu is not worth resuming.
    at_main = fresh(engine)
    assert not at_main.resumable
    later = engine.new_state("s4", language=None, contact_id=None, now=0, resume_from=at_main)
    assert later.screen is Screen.LANGUAGE


# -- the whole tree --------------------------------------------------------------------------

MENU_INPUTS = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "0", "00", "", "x", "12", "1*2")
# On the size screen only the smallest and largest sizes matter (the confirmation shows it).
SIZE_INPUTS = ("0", "00", "", "1", "99", "100", "abc", "1*2")


def _end_screens(engine: MenuEngine, action: Action, state: MenuState) -> list[str]:
    """The final screens this action can show, with the longest values it can carry."""
    language, data = state.language, state.data
    if action is Action.HELP:
        return [engine.end(language, "end.ticket", ref=LONGEST_REFERENCE)]
    if action is Action.REGISTER:
        place = engine.places.label(str(data["place"]))
        return [engine.end(language, "end.household", size=99, place=place)]
    if action is Action.PROTECTION:
        return [
            engine.end(language, "end.protection.nocall", ref=LONGEST_REFERENCE),
            *(
                engine.end(
                    language,
                    "end.protection.callback",
                    ref=LONGEST_REFERENCE,
                    when=translate(f"when.{when}", language),
                )
                for when in ("morning", "afternoon", "evening")
            ),
        ]
    if action is Action.STATUS:
        many = [
            (LONGEST_REFERENCE, f"cat.{category.value}", status.value)
            for category in TicketCategory
            for status in TicketStatus
        ]
        return [engine.end_status(language, []), engine.end_status(language, many)]
    key = {Action.OPT_OUT: "end.opt_out", Action.OPT_IN: "end.opt_in", Action.ERASE: "end.erased"}
    return [engine.end(language, key[action])]


def _state_key(state: MenuState) -> str:
    return json.dumps([state.language, state.screen, state.data], sort_keys=True)


@pytest.mark.parametrize("language", LANGUAGES)
def test_whole_menu_tree_fits_the_screen_in_gsm7(
    engine: MenuEngine, places: PlaceDirectory, language: Language
) -> None:
    typed_names = [record.name for record in places.gazetteer] + ["zzzzqq", "a", "Mop*ti"]
    start = engine.new_state("s", language=None, contact_id=None, now=0.0)
    queue: deque[MenuState] = deque([start])
    seen: set[str] = {_state_key(start)}
    screens: set[str] = set()
    actions: set[Action] = set()

    def check(screen: str) -> None:
        if screen not in screens:  # thousands of states share a few hundred screens
            screens.add(check_screen(screen))

    while queue:
        state = queue.popleft()
        check(engine.render(state))
        if state.screen is Screen.PLACE_TYPE:
            inputs: tuple[str, ...] = (*MENU_INPUTS, *typed_names)
        elif state.screen is Screen.SIZE:
            inputs = SIZE_INPUTS
        else:
            inputs = MENU_INPUTS
        for text in inputs:
            if state.screen is Screen.LANGUAGE and state.language is None and text == "1":
                # Walk one language per test case: pick it on the first screen.
                text = {"fr": "1", "bm": "2", "en": "3"}[language.value]
            nxt = copy(state)
            step = engine.feed(nxt, text)
            if step.action is not None:
                actions.add(step.action)
                for end in _end_screens(engine, step.action, nxt):
                    check(end)
                continue
            check(engine.render(nxt, step.notice))
            key = _state_key(nxt)
            if nxt.language in (None, language) and key not in seen:
                seen.add(key)
                queue.append(nxt)
    assert actions == set(Action)
    reached = {json.loads(key)[1] for key in seen}
    assert reached == {screen.value for screen in Screen} - {Screen.RESUME.value}
    # Every region's cercle list and every typed place were visited.
    assert len(seen) > 1000, len(seen)
    # The resume question, in this language, with and without a notice.
    dropped = next(
        MenuState("old", Screen(screen), language=language, data=data)
        for lang, screen, data in map(json.loads, seen)
        if lang == language.value and Screen(screen) in RESUMABLE
    )
    resumed = engine.new_state(
        "new", language=language, contact_id=None, now=1.0, resume_from=dropped
    )
    check_screen(engine.render(resumed))
    check_screen(engine.render(resumed, "notice.invalid"))


def test_status_screen_lists_what_fits_and_hides_sensitive_categories(engine: MenuEngine) -> None:
    tickets = [("T-AAAAA", "cat.protection", "new"), ("T-CCCCC", "cat.health", "in_progress")]
    screen = check_screen(engine.end_status(Language.ENGLISH, tickets))
    assert screen == "END Your requests:\nT-AAAAA Request: received\nT-CCCCC Health: in progress"
    many = [(f"T-{i:05d}", "cat.wash", "waiting") for i in range(30)]
    screen = check_screen(engine.end_status(Language.FRENCH, many))
    assert screen.count("\n") >= 4
