"""Custom actions of the Deme bot.

Flow (see data/rules.yml):
  need intent -> action_create_ticket (ticket created at once with whatever is known)
              -> need_form asks, one SMS at a time, for a missing place / household size
                 (validate_need_form: place resolved by the platform, size 1..99 in digits or
                 fr/bm/en words; each validated answer PATCHes the ticket at once)
              -> action_update_ticket confirms with the reference.
  protection  -> action_create_ticket (sensitive) -> callback_form (one discreet question:
  / PSEA         is it safe to call back?) -> action_record_callback.
  complaint, question, rumour -> action_create_ticket (its kind) -> action_confirm_report.
All platform calls go through PlatformClient; on failure the user still gets a polite reply.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Callable
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import yaml
from rasa_sdk import Action, FormValidationAction, Tracker, ValidationAction
from rasa_sdk.events import ActiveLoop, AllSlotsReset, EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from .platform_client import PlatformClient, PlatformError

try:  # the platform imports bot.normalize; the action server runs with bot/ as cwd
    from bot.fallback import household_size_in_text
    from bot.normalize import guess_language, normalize, parse_household_size, tokens
except ImportError:  # pragma: no cover - depends on sys.path
    from fallback import household_size_in_text
    from normalize import guess_language, normalize, parse_household_size, tokens

logger = logging.getLogger(__name__)

LANGS = ("fr", "bm", "en")
SKIPPED = "-"  # the sender said they do not know / do not want to say
MAX_ATTEMPTS = 2  # invalid answers before the form accepts what it has and moves on

CATEGORY_BY_INTENT = {
    "request_health": "health",
    "request_wash": "wash",
    "request_shelter_nfi": "shelter_nfi",
    "request_food": "food",
    "request_other": "other",
    "protection_concern": "protection",
    # Sexual exploitation or abuse by an aid worker: a protection case, always sensitive.
    "psea_report": "protection",
    "complaint": "other",
    "information_request": "other",
    "rumour": "other",
}
# What kind of report a ticket is (the platform's ``kind``); every other intent is a need.
KIND_BY_INTENT = {
    "psea_report": "psea",
    "complaint": "complaint",
    "information_request": "information_request",
    "rumour": "rumour",
}
# Tickets that only a protection officer may see, whatever their category.
SENSITIVE_INTENTS = {"protection_concern", "psea_report"}
# Reports that are not a need: no place or household-size questions, one confirmation.
REPORT_INTENTS = {"complaint", "information_request", "rumour"}
# Intents that are never an answer to a form question: the form lets the rules handle them.
INTERRUPTING_INTENTS = {
    *CATEGORY_BY_INTENT,
    "opt_out",
    "erase_data",
    "ticket_status",
    "greet",
    "thanks",
}
YES_WORDS = {"oui", "ouii", "wi", "ok", "owo", "awo", "yes", "yeah", "yep", "awa"}
NO_WORDS = {"non", "nn", "nan", "ayi", "no", "nope", "nah", "abada", "jamais", "never"}

_LABELS: dict[str, Any] = yaml.safe_load(
    (Path(__file__).with_name("labels.yml")).read_text(encoding="utf-8")
)


T = TypeVar("T")


@lru_cache(maxsize=4)
def _client_for(base_url: str | None, token: str | None) -> PlatformClient:
    return PlatformClient(base_url=base_url, token=token)


def client() -> PlatformClient:
    """The shared client (one keep-alive pool) for the current DEME_API_URL / DEME_API_TOKEN."""
    return _client_for(os.environ.get("DEME_API_URL"), os.environ.get("DEME_API_TOKEN"))


async def api(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking platform call off the action server's event loop.

    The action server answers every action of every conversation on one event loop: a
    blocking HTTP call there made each action wait for all the API calls queued before it
    (most of a turn's time at 20 messages/s, measured with bench/bot_latency.py).
    """
    return await asyncio.to_thread(call, *args, **kwargs)


def lang_of(tracker: Tracker) -> str:
    lang = tracker.get_slot("lang")
    return lang if lang in LANGS else "fr"


def latest_intent(tracker: Tracker) -> str | None:
    return (tracker.latest_message.get("intent") or {}).get("name")


def latest_text(tracker: Tracker) -> str:
    """The sender's own words for the ticket (raw text from the channel when available)."""
    meta = tracker.latest_message.get("metadata") or {}
    raw = meta.get("raw_text") if isinstance(meta, dict) else None
    return str(raw or tracker.latest_message.get("text") or "")


def latest_message_id(tracker: Tracker) -> int | None:
    """The platform's id of the inbound message of this turn (the deme channel's metadata),
    sent with a ticket creation as its idempotency key; None when absent or malformed."""
    meta = tracker.latest_message.get("metadata") or {}
    value = meta.get("message_id") if isinstance(meta, dict) else None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return None
    return value


def stated_household_size(tracker: Tracker) -> int | None:
    """Household size from the latest message: a size stated with its cue words ("nous
    sommes 6") wins over the NLU entity, which can pick a duration ("depuis 3 jours")."""
    from_text = household_size_in_text(latest_text(tracker))
    if from_text is not None:
        return from_text
    size_text = latest_entity(tracker, "household_size") or tracker.get_slot("household_size")
    return parse_household_size(size_text) if known(size_text) else None


def latest_entity(tracker: Tracker, name: str) -> str | None:
    values = [
        e.get("value")
        for e in tracker.latest_message.get("entities") or []
        if e.get("entity") == name and e.get("value")
    ]
    return str(values[0]) if values else None


def known(value: Any) -> bool:
    return value not in (None, "", SKIPPED)


def ticket_fields(intent: str | None) -> dict[str, Any]:
    """Category, kind and sensitivity of the ticket an intent opens — the one place that
    decides them (a PSEA report is a sensitive protection case of kind "psea")."""
    name = intent or ""
    return {
        "category": CATEGORY_BY_INTENT.get(name, "other"),
        "kind": KIND_BY_INTENT.get(name, "need"),
        "sensitive": name in SENSITIVE_INTENTS,
    }


_DAYS_PER_UNIT = {
    "jour": 1, "jours": 1, "day": 1, "days": 1, "tile": 1,
    "semaine": 7, "semaines": 7, "week": 7, "weeks": 7, "dogokun": 7,
    "mois": 30, "month": 30, "months": 30, "kalo": 30,
}  # fmt: skip
_SINCE_CUES = {"depuis", "ilya", "kabini", "ago", "since", "for"}
_YESTERDAY = {"hier", "yesterday", "kunun"}


def displaced_since(text: str, today: date) -> date | None:
    """The day an arriving household left, from its own words: "depuis 2 semaines", "il y a
    trois jours", "two weeks ago", "kabini tile saba" (bm: unit before the number), "hier";
    None when the message does not say."""
    words = tokens(normalize(text))
    if set(words) & _YESTERDAY:
        return today - timedelta(days=1)
    # "il y a" (three words, often typed "ilya") counts as one cue
    if not set(words) & _SINCE_CUES and "il y a" not in " ".join(words):
        return None
    for i, word in enumerate(words):
        days = _DAYS_PER_UNIT.get(word)
        if days is None:
            continue
        # fr/en put the number before the unit, Bambara after it
        before = words[i - 1] if i else None
        after = words[i + 1] if i + 1 < len(words) else None
        for neighbour in (before, after):
            count = parse_household_size(neighbour) if neighbour else None
            if count is not None:
                return today - timedelta(days=count * days)
    return None


_ORIGIN_CUE = re.compile(
    r"\b(venons de|venu de|venus de|venue de|vient de|arrives de|arrive de|arrivee de|"
    r"deplaces de|quitte|fui|from|fled|left|bora|ka bo)\s*$"
)


def places_with_origin(tracker: Tracker) -> tuple[str | None, str | None]:
    """(origin, place) among the message's place entities: one right after "venus de",
    "from", "bora"… is where the household came from, not where it is. (None, None) when no
    place entity follows such a cue."""
    text = str(tracker.latest_message.get("text") or "")
    places = [
        e
        for e in tracker.latest_message.get("entities") or []
        if e.get("entity") == "place" and e.get("value") and isinstance(e.get("start"), int)
    ]
    origin = next((e for e in places if _ORIGIN_CUE.search(text[: e["start"]].rstrip())), None)
    if origin is None:
        return None, None
    rest = [e for e in places if e is not origin]
    return str(origin["value"]), (str(rest[0]["value"]) if rest else None)


def label(kind: str, key: str, lang: str) -> str:
    return (_LABELS.get(kind, {}).get(key) or {}).get(lang) or key


class ValidatePredefinedSlots(ValidationAction):
    """Run by action_extract_slots after every message: keeps the `lang` slot current.

    Order: clear evidence in the message itself > the contact's saved language sent by the
    gateway in metadata > the language already in use > French.
    """

    def name(self) -> str:
        return "action_validate_slot_mappings"

    async def extract_lang(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        text = tracker.latest_message.get("text") or ""
        meta = tracker.latest_message.get("metadata") or {}
        guessed = guess_language(text)
        saved = meta.get("language") if isinstance(meta, dict) else None
        current = tracker.get_slot("lang")
        lang = (
            guessed
            or (saved if saved in LANGS else None)
            or (current if current in LANGS else "fr")
        )
        return {"lang": lang} if lang != current else {}


class ActionCreateTicket(Action):
    """Create the ticket as soon as a need (or a protection concern) is stated."""

    def name(self) -> str:
        return "action_create_ticket"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        intent = latest_intent(tracker)
        fields = ticket_fields(intent)
        category, sensitive = fields["category"], fields["sensitive"]
        place = latest_entity(tracker, "place") or tracker.get_slot("place")
        size = stated_household_size(tracker)
        place = place if known(place) else None
        reference = None
        try:
            ticket = await api(
                client().create_ticket,
                sender=tracker.sender_id,
                category=category,
                kind=fields["kind"],
                description=latest_text(tracker),
                place=place,
                household_size=size,
                language=lang_of(tracker),
                sensitive=sensitive,
                callback_ok=None,
                message_id=latest_message_id(tracker),
            )
            reference = ticket.get("reference")
            if ticket.get("kind") == "psea" and not sensitive:
                # The platform's SEA screen recognised exploitation or abuse by an aid worker
                # the model took for something else: the protection flow (no questions about
                # the place or the household), not a need's.
                category, sensitive = "protection", True
        except PlatformError as exc:
            logger.warning("ticket creation failed for %s: %s", category, exc)
        flow = "protection" if sensitive else "report" if intent in REPORT_INTENTS else "need"
        events: list[EventType] = [
            SlotSet("ticket_ref", reference),
            SlotSet("category", category),
            SlotSet("flow", flow),
            SlotSet("fresh_ticket", True),
            SlotSet("place_attempts", 0),
            SlotSet("size_attempts", 0),
        ]
        if latest_entity(tracker, "place"):
            events.append(SlotSet("place_code", None))  # a new place: resolve it again
        if sensitive:
            events.append(SlotSet("callback_ok", None))
        elif size:
            events.append(SlotSet("household_size", str(size)))
        return events


class ActionStartRegistration(Action):
    """A household report (place and size, no need stated): no ticket, the form completes it."""

    def name(self) -> str:
        return "action_start_registration"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        size = stated_household_size(tracker)
        since = displaced_since(latest_text(tracker), date.today())
        events: list[EventType] = [SlotSet("displaced_since", since.isoformat() if since else None)]
        if latest_entity(tracker, "place"):
            events.append(SlotSet("place_code", None))
        origin, place = places_with_origin(tracker)
        if origin is not None:  # the model took where they came from for where they are
            events += [SlotSet("origin", origin), SlotSet("place", place)]
        if size:
            events.append(SlotSet("household_size", str(size)))
        return [
            *events,
            SlotSet("flow", "register"),
            SlotSet("fresh_ticket", False),
            SlotSet("place_attempts", 0),
            SlotSet("size_attempts", 0),
        ]


class _AskAction(Action):
    slot = ""

    def name(self) -> str:
        return f"action_ask_{self.slot}"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        # The first question after a new ticket carries its reference: one SMS, not two.
        if tracker.get_slot("fresh_ticket") and tracker.get_slot("flow") == "need":
            reference = tracker.get_slot("ticket_ref")
            if reference:
                dispatcher.utter_message(response=f"utter_ticket_ask_{self.slot}", ref=reference)
            else:
                dispatcher.utter_message(response=f"utter_received_ask_{self.slot}")
            return [SlotSet("fresh_ticket", False)]
        dispatcher.utter_message(response=f"utter_ask_{self.slot}")
        return []


class ActionAskPlace(_AskAction):
    slot = "place"


class ActionAskHouseholdSize(_AskAction):
    slot = "household_size"


async def _patch_ticket(tracker: Tracker, **fields: Any) -> None:
    reference = tracker.get_slot("ticket_ref")
    if tracker.get_slot("flow") != "need" or not reference:
        return
    try:
        await api(client().update_ticket, reference, **fields)
    except PlatformError as exc:
        logger.warning("ticket %s update failed: %s", reference, exc)


class ValidateNeedForm(FormValidationAction):
    def name(self) -> str:
        return "validate_need_form"

    # -- extraction of free-text answers (entities are mapped by the domain) ---------------------
    def _free_answer(self, tracker: Tracker, slot: str) -> str | None:
        if tracker.get_slot("requested_slot") != slot:
            return None
        intent = latest_intent(tracker)
        if intent in INTERRUPTING_INTENTS:
            return None
        # an entity for either question is handled by the domain's from_entity mappings
        if latest_entity(tracker, "place") or latest_entity(tracker, "household_size"):
            return None
        if intent == "deny":
            return SKIPPED
        text = (tracker.latest_message.get("text") or "").strip()
        return text or None

    async def extract_place(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        answer = self._free_answer(tracker, "place")
        return {"place": answer} if answer else {}

    async def extract_household_size(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        answer = self._free_answer(tracker, "household_size")
        return {"household_size": answer} if answer else {}

    # -- validation ------------------------------------------------------------------------------
    async def validate_place(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if value is None:  # a SlotSet(None) replayed at form activation: nothing to check
            return {"place": None}
        if value == SKIPPED:
            return {"place": SKIPPED}
        text = str(value).strip()
        if not text:
            return {"place": None}
        attempts = int(tracker.get_slot("place_attempts") or 0) + 1
        try:
            match = await api(client().resolve_place, text)
            message = latest_text(tracker).strip()
            if not match and message and message.lower() != text.lower():
                # The entity may be one word of a longer name ("koura" of "Medina Koura"):
                # the platform can still find the place in the sender's whole message.
                match = await api(client().resolve_place, message[:120])
        except PlatformError as exc:
            logger.warning("place resolution unavailable: %s", exc)
            match = None
            attempts = MAX_ATTEMPTS  # cannot check: keep the sender's words, do not nag
        if match:
            name = match.get("name") or text
            code = match.get("code")
            if not tracker.get_slot("fresh_ticket"):
                await _patch_ticket(tracker, place=code or name)
            return {"place": name, "place_code": code, "place_attempts": attempts}
        if attempts >= MAX_ATTEMPTS:
            # Keep the sender's own words: an operator can place it on the map later.
            if not tracker.get_slot("fresh_ticket"):
                await _patch_ticket(tracker, place=text)
            return {"place": text, "place_code": None, "place_attempts": attempts}
        dispatcher.utter_message(response="utter_place_unknown")
        return {"place": None, "place_attempts": attempts}

    async def validate_household_size(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if value is None:
            return {"household_size": None}
        if value == SKIPPED:
            return {"household_size": SKIPPED}
        size = parse_household_size(str(value))
        attempts = int(tracker.get_slot("size_attempts") or 0) + 1
        if size is not None:
            if not tracker.get_slot("fresh_ticket"):
                await _patch_ticket(tracker, household_size=size)
            return {"household_size": str(size), "size_attempts": attempts}
        if attempts >= MAX_ATTEMPTS:
            return {"household_size": SKIPPED, "size_attempts": attempts}
        dispatcher.utter_message(response="utter_household_size_invalid")
        return {"household_size": None, "size_attempts": attempts}


class ActionUpdateTicket(Action):
    """need_form complete: make sure the ticket holds the answers, or register the household."""

    def name(self) -> str:
        return "action_update_ticket"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        flow = tracker.get_slot("flow")
        place = tracker.get_slot("place")
        place_ref = tracker.get_slot("place_code") or place
        size = parse_household_size(tracker.get_slot("household_size"))
        lang = lang_of(tracker)
        events: list[EventType] = [SlotSet("fresh_ticket", False)]
        platform = client()
        if flow == "register":
            if known(place) and size:
                try:
                    origin = tracker.get_slot("origin")
                    await api(
                        platform.register_household,
                        sender=tracker.sender_id,
                        size=size,
                        place=place_ref,
                        origin=origin if known(origin) else None,
                        language=lang,
                        displaced_since=tracker.get_slot("displaced_since"),
                    )
                    dispatcher.utter_message(
                        response="utter_household_registered", size=size, place=place
                    )
                    return events
                except PlatformError as exc:
                    logger.warning("household registration failed: %s", exc)
            dispatcher.utter_message(response="utter_received_done")
            return events

        reference = tracker.get_slot("ticket_ref")
        if not reference:
            # Creation failed earlier (platform down): try again now with everything we know.
            try:
                ticket = await api(
                    platform.create_ticket,
                    sender=tracker.sender_id,
                    category=tracker.get_slot("category") or "other",
                    kind="need",
                    description=latest_text(tracker),
                    place=place_ref if known(place) else None,
                    household_size=size,
                    language=lang,
                    sensitive=False,
                    message_id=latest_message_id(tracker),
                )
                reference = ticket.get("reference")
                events.append(SlotSet("ticket_ref", reference))
            except PlatformError as exc:
                logger.warning("ticket creation retry failed: %s", exc)
        if reference:
            dispatcher.utter_message(response="utter_ticket_done", ref=reference)
        else:
            dispatcher.utter_message(response="utter_received_done")
        return events


class ValidateCallbackForm(FormValidationAction):
    def name(self) -> str:
        return "validate_callback_form"

    async def extract_callback_ok(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if tracker.get_slot("requested_slot") != "callback_ok":
            return {}
        intent = latest_intent(tracker)
        words = set(tokens(normalize(tracker.latest_message.get("text") or "")))
        if intent == "affirm" or (words & YES_WORDS and not words & NO_WORDS):
            return {"callback_ok": "yes"}
        if intent == "deny" or (words & NO_WORDS and not words & YES_WORDS):
            return {"callback_ok": "no"}
        if intent in {
            "opt_out",
            "erase_data",
            "request_health",
            "request_wash",
            "request_shelter_nfi",
            "request_food",
            "request_other",
        }:
            return {}  # a different request: let the rules handle it
        # Anything else is more about the concern: add it to the sensitive ticket, never echo it.
        await _note_sensitive(tracker, latest_text(tracker))
        return {"callback_ok": "unknown"}

    async def validate_callback_ok(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if value is None:  # reset by action_create_ticket: the question is still to be asked
            return {"callback_ok": None}
        return {"callback_ok": value if value in ("yes", "no", "unknown") else "unknown"}


async def _note_sensitive(tracker: Tracker, note: str) -> None:
    reference = tracker.get_slot("ticket_ref")
    if not reference or not note:
        return
    try:
        await api(client().update_ticket, reference, note=note)
    except PlatformError as exc:
        logger.warning("note on ticket %s failed: %s", reference, exc)


class ActionRecordCallback(Action):
    def name(self) -> str:
        return "action_record_callback"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        answer = tracker.get_slot("callback_ok")
        reference = tracker.get_slot("ticket_ref")
        callback_ok = {"yes": True, "no": False}.get(answer or "")
        if reference and callback_ok is not None:
            try:
                await api(client().update_ticket, reference, callback_ok=callback_ok)
            except PlatformError as exc:
                logger.warning("callback answer on %s not recorded: %s", reference, exc)
        if callback_ok is True:
            dispatcher.utter_message(response="utter_callback_yes")
        elif callback_ok is False:
            dispatcher.utter_message(response="utter_callback_no")
        else:
            dispatcher.utter_message(response="utter_callback_unknown")
        return [SlotSet("callback_ok", None), SlotSet("fresh_ticket", False)]


class ActionConfirmReport(Action):
    """A complaint, a question or a rumour was recorded: one confirmation with its reference."""

    def name(self) -> str:
        return "action_confirm_report"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        reference = tracker.get_slot("ticket_ref")
        if reference:
            dispatcher.utter_message(response="utter_report_received", ref=reference)
        else:
            dispatcher.utter_message(response="utter_received_done")
        return [SlotSet("fresh_ticket", False)]


class ActionTicketStatus(Action):
    def name(self) -> str:
        return "action_ticket_status"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        lang = lang_of(tracker)
        try:
            tickets = await api(client().list_tickets, tracker.sender_id)
        except PlatformError as exc:
            logger.warning("ticket list unavailable: %s", exc)
            dispatcher.utter_message(response="utter_status_unavailable")
            return []
        if not tickets:
            dispatcher.utter_message(response="utter_status_none")
            return []
        parts: list[str] = []
        budget = 130  # the sentence around the list takes the rest of the 160 characters
        for ticket in sorted(tickets, key=lambda t: str(t.get("updated_at") or ""), reverse=True):
            part = "{} {}: {}".format(
                ticket.get("reference", "?"),
                label("category", str(ticket.get("category")), lang),
                label("status", str(ticket.get("status")), lang),
            )
            if sum(len(p) + 2 for p in parts) + len(part) > budget:
                break
            parts.append(part)
        dispatcher.utter_message(response="utter_status_list", tickets="; ".join(parts))
        return []


def _stop_forms() -> list[EventType]:
    return [ActiveLoop(None), SlotSet("requested_slot", None)]


class ActionOptOut(Action):
    def name(self) -> str:
        return "action_opt_out"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        try:
            await api(client().opt_out, tracker.sender_id)
            dispatcher.utter_message(response="utter_opted_out")
        except PlatformError as exc:
            logger.warning("opt-out failed: %s", exc)
            dispatcher.utter_message(response="utter_request_noted")
        return _stop_forms()


class ActionEraseData(Action):
    def name(self) -> str:
        return "action_erase_data"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        lang = lang_of(tracker)
        try:
            await api(client().erase, tracker.sender_id)
            dispatcher.utter_message(response="utter_erase_done")
        except PlatformError as exc:
            logger.warning("erase failed: %s", exc)
            dispatcher.utter_message(response="utter_request_noted")
        # Forget what this conversation holds too (keep only the reply language).
        return [*_stop_forms(), AllSlotsReset(), SlotSet("lang", lang)]
