"""Unit tests of the custom actions: real HTTP calls to a local fake platform (conftest.py),
trackers built with Tracker.from_dict, replies collected with CollectingDispatcher."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from actions import actions as A
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher


def tracker(
    *,
    text: str = "",
    intent: str | None = None,
    entities: list[dict[str, Any]] | None = None,
    slots: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    active_loop: str | None = None,
    sender: str = "c0ffee-sender",
) -> Tracker:
    all_slots = {
        "lang": "fr",
        "place": None,
        "place_code": None,
        "household_size": None,
        "callback_ok": None,
        "ticket_ref": None,
        "category": None,
        "flow": None,
        "fresh_ticket": False,
        "place_attempts": 0,
        "size_attempts": 0,
        "requested_slot": None,
        "origin": None,
        "displaced_since": None,
    }
    all_slots.update(slots or {})
    return Tracker.from_dict(
        {
            "sender_id": sender,
            "slots": all_slots,
            "latest_message": {
                "text": text,
                "intent": {"name": intent, "confidence": 0.9} if intent else {},
                "entities": entities or [],
                "metadata": metadata or {},
            },
            "events": [],
            "paused": False,
            "followup_action": None,
            "active_loop": {"name": active_loop} if active_loop else {},
            "latest_action_name": "action_listen",
        }
    )


def run(action: Any, t: Tracker) -> tuple[list[dict[str, Any]], CollectingDispatcher]:
    dispatcher = CollectingDispatcher()
    events = asyncio.run(action.run(dispatcher, t, {}))
    return events, dispatcher


def slot_events(events: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["name"]: e["value"] for e in events if e.get("event") == "slot"}


def responses(dispatcher: CollectingDispatcher) -> list[str]:
    return [m.get("response") for m in dispatcher.messages]


def ent(name: str, value: str) -> dict[str, Any]:
    return {"entity": name, "value": value, "start": 0, "end": len(value)}


# --- ticket creation ------------------------------------------------------------------------


def test_need_creates_ticket_at_once_with_what_is_known(platform):
    t = tracker(
        text="ji te yen sevare",
        intent="request_wash",
        entities=[ent("place", "Sévaré")],
        slots={"lang": "bm", "place": "Sévaré"},
        metadata={"raw_text": "ji tɛ yen Sevare"},
    )
    events, dispatcher = run(A.ActionCreateTicket(), t)
    body = platform.last("POST", "/api/v1/tickets")["body"]
    assert body == {
        "sender": "c0ffee-sender",
        "category": "wash",
        "description": "ji tɛ yen Sevare",
        "place": "Sévaré",
        "household_size": None,
        "language": "bm",
        "sensitive": False,
        "callback_ok": None,
        "kind": "need",
    }
    slots = slot_events(events)
    assert slots["ticket_ref"] == "T-TEST1"
    assert slots["flow"] == "need" and slots["category"] == "wash" and slots["fresh_ticket"] is True
    assert platform.requests_auth == "Bearer test-service-token"
    assert dispatcher.messages == []  # the first form question carries the reference


def test_ticket_creation_carries_the_inbound_message_id_as_idempotency_key(platform):
    """The deme channel's metadata names the platform's inbound message: the ticket creation
    sends it, so the platform returns the first ticket if its fallback got there too."""
    t = tracker(
        text="pas d'eau a sevare",
        intent="request_wash",
        metadata={"raw_text": "pas d'eau a Sevare", "message_id": 4242},
    )
    run(A.ActionCreateTicket(), t)
    assert platform.last("POST", "/api/v1/tickets")["body"]["message_id"] == 4242

    # The retry at form completion (creation failed earlier) sends its own turn's message.
    completion = tracker(
        text="6",
        slots={"flow": "need", "category": "wash", "place": "Sévaré", "household_size": "6"},
        metadata={"message_id": 4243},
    )
    run(A.ActionUpdateTicket(), completion)
    assert platform.last("POST", "/api/v1/tickets")["body"]["message_id"] == 4243

    # Malformed ids are not sent (the platform would refuse them with a 422).
    for bad in ("4242", True, 0, None):
        run(A.ActionCreateTicket(), tracker(intent="request_wash", metadata={"message_id": bad}))
        assert "message_id" not in platform.last("POST", "/api/v1/tickets")["body"]


@pytest.mark.parametrize(
    "intent,category,kind,sensitive,flow",
    [
        ("psea_report", "protection", "psea", True, "protection"),
        ("protection_concern", "protection", "need", True, "protection"),
        ("request_food", "food", "need", False, "need"),
        ("complaint", "other", "complaint", False, "report"),
        ("information_request", "other", "information_request", False, "report"),
        ("rumour", "other", "rumour", False, "report"),
    ],
)
def test_each_intent_opens_a_ticket_of_its_kind(platform, intent, category, kind, sensitive, flow):
    """Sexual exploitation by an aid worker is a sensitive protection case of kind "psea";
    food has its own category; complaints, questions and rumours are tickets of their kind."""
    events, _ = run(A.ActionCreateTicket(), tracker(text="...", intent=intent))
    response = platform.last("POST", "/api/v1/tickets")
    body = response["body"]
    assert (body["category"], body["kind"], body["sensitive"]) == (category, kind, sensitive)
    slots = slot_events(events)
    assert slots["ticket_ref"] == "T-TEST1"  # the fake platform accepted it
    assert slots["flow"] == flow


def test_a_report_is_confirmed_once_with_its_reference(platform):
    t = tracker(text="la distribution etait injuste", intent="complaint")
    events, _ = run(A.ActionCreateTicket(), t)
    confirm = tracker(slots={**slot_events(events), "lang": "fr"})
    _, dispatcher = run(A.ActionConfirmReport(), confirm)
    assert dispatcher.messages[0]["response"] == "utter_report_received"
    assert dispatcher.messages[0]["ref"] == "T-TEST1"

    platform.fail_with = 503  # the platform is down: still one polite answer
    events, _ = run(A.ActionCreateTicket(), t)
    _, dispatcher = run(A.ActionConfirmReport(), tracker(slots=slot_events(events)))
    assert responses(dispatcher) == ["utter_received_done"]


def test_the_fake_platform_refuses_an_unknown_kind(platform):
    from actions.platform_client import PlatformClient, PlatformError

    client = PlatformClient(base_url=A.client().base_url, token="t")
    with pytest.raises(PlatformError, match="kind"):
        client.create_ticket(
            sender="s",
            category="other",
            description="x",
            place=None,
            household_size=None,
            language="fr",
            sensitive=False,
            kind="gossip",
        )


def test_household_size_words_are_parsed_for_the_ticket(platform):
    t = tracker(
        text="an mago be fura la an ye mogo wolonwula ye",
        intent="request_health",
        entities=[ent("household_size", "wolonwula")],
        slots={"household_size": "wolonwula"},
    )
    events, _ = run(A.ActionCreateTicket(), t)
    assert platform.last("POST", "/api/v1/tickets")["body"]["household_size"] == 7
    assert slot_events(events)["household_size"] == "7"


def test_protection_ticket_is_sensitive_and_reply_never_repeats_content(platform):
    t = tracker(text="mon mari me frappe", intent="protection_concern")
    events, dispatcher = run(A.ActionCreateTicket(), t)
    body = platform.last("POST", "/api/v1/tickets")["body"]
    assert body["category"] == "protection" and body["sensitive"] is True
    assert body["callback_ok"] is None
    slots = slot_events(events)
    assert slots["flow"] == "protection" and slots["callback_ok"] is None
    assert all("frappe" not in str(m) for m in dispatcher.messages)


def test_platform_down_still_answers_politely(platform):
    platform.fail_with = 503
    t = tracker(text="pas d eau", intent="request_wash")
    events, _ = run(A.ActionCreateTicket(), t)
    assert slot_events(events)["ticket_ref"] is None
    t2 = tracker(slots={"fresh_ticket": True, "flow": "need", "ticket_ref": None})
    events, dispatcher = run(A.ActionAskPlace(), t2)
    assert responses(dispatcher) == ["utter_received_ask_place"]


def test_unreachable_platform_does_not_crash(monkeypatch):
    monkeypatch.setenv("DEME_API_URL", "http://127.0.0.1:9")  # nothing listens there
    events, _ = run(A.ActionCreateTicket(), tracker(text="malade", intent="request_health"))
    assert slot_events(events)["ticket_ref"] is None


# --- form questions and validation ------------------------------------------------------------


def test_first_question_carries_the_reference_then_plain_questions(platform):
    t = tracker(slots={"fresh_ticket": True, "flow": "need", "ticket_ref": "T-7K2Q9"})
    events, dispatcher = run(A.ActionAskPlace(), t)
    assert dispatcher.messages[0]["response"] == "utter_ticket_ask_place"
    assert dispatcher.messages[0]["ref"] == "T-7K2Q9"
    assert slot_events(events) == {"fresh_ticket": False}
    _, dispatcher = run(A.ActionAskHouseholdSize(), tracker(slots={"flow": "need"}))
    assert responses(dispatcher) == ["utter_ask_household_size"]


def validate(method: str, value: Any, t: Tracker):
    dispatcher = CollectingDispatcher()
    form = A.ValidateNeedForm()
    result = asyncio.run(getattr(form, method)(value, dispatcher, t, {}))
    return result, dispatcher


def test_place_is_resolved_by_the_platform_and_patches_the_ticket(platform):
    t = tracker(slots={"flow": "need", "ticket_ref": "T-7K2Q9", "requested_slot": "place"})
    result, dispatcher = validate("validate_place", "sevare", t)
    assert result["place"] == "Sévaré" and result["place_code"] == "ML05-SEV"
    assert platform.last("GET", "/api/v1/places/resolve")["query"] == {"q": ["sevare"]}
    patch = platform.last("PATCH", "/api/v1/tickets/T-7K2Q9")
    assert patch["body"] == {"place": "ML05-SEV"}
    assert dispatcher.messages == []


def test_a_partial_place_entity_is_resolved_from_the_whole_message(platform):
    # DIET sometimes tags one word of a longer name; the platform finds it in the message.
    platform.places["on est a medina coura"] = {
        "code": "ML-BKO-MC",
        "name": "Médina Coura",
        "kind": "quarter",
        "confidence": 1.0,
    }
    t = tracker(
        text="on est a medina coura",
        slots={"flow": "need", "ticket_ref": "T-7K2Q9", "requested_slot": "place"},
    )
    result, dispatcher = validate("validate_place", "coura", t)
    assert result["place"] == "Médina Coura" and result["place_code"] == "ML-BKO-MC"
    queries = [r["query"]["q"] for r in platform.requests if r["path"].endswith("/resolve")]
    assert queries == [["coura"], ["on est a medina coura"]]
    assert dispatcher.messages == []


def test_unknown_place_is_asked_again_once_then_kept_as_written(platform):
    t = tracker(slots={"flow": "need", "ticket_ref": "T-1", "requested_slot": "place"})
    result, dispatcher = validate("validate_place", "derriere le marche", t)
    assert result == {"place": None, "place_attempts": 1}
    assert responses(dispatcher) == ["utter_place_unknown"]
    t = tracker(slots={"flow": "need", "ticket_ref": "T-1", "place_attempts": 1})
    result, dispatcher = validate("validate_place", "derriere le marche", t)
    assert result["place"] == "derriere le marche"
    assert platform.last("PATCH", "/api/v1/tickets/T-1")["body"] == {"place": "derriere le marche"}


@pytest.mark.parametrize(
    "answer,expected",
    [
        ("7", "7"),
        ("sept", "7"),
        ("wolonwula", "7"),
        ("twenty one", "21"),
        ("an ye mogo mugan ni duuru ye", "25"),
        ("nous sommes 12", "12"),
    ],
)
def test_household_size_in_three_languages(platform, answer, expected):
    t = tracker(slots={"flow": "need", "ticket_ref": "T-2"})
    result, _ = validate("validate_household_size", answer, t)
    assert result["household_size"] == expected
    assert platform.last("PATCH", "/api/v1/tickets/T-2")["body"] == {
        "household_size": int(expected)
    }


@pytest.mark.parametrize("answer", ["0", "150", "beaucoup"])
def test_invalid_household_size_is_asked_again(platform, answer):
    result, dispatcher = validate(
        "validate_household_size", answer, tracker(slots={"flow": "need"})
    )
    assert result["household_size"] is None
    assert responses(dispatcher) == ["utter_household_size_invalid"]


def test_free_text_answer_is_extracted_only_for_the_requested_slot():
    form = A.ValidateNeedForm()
    t = tracker(text="derriere le marche", intent="inform", slots={"requested_slot": "place"})
    out = asyncio.run(form.extract_place(CollectingDispatcher(), t, {}))
    assert out == {"place": "derriere le marche"}
    out = asyncio.run(form.extract_household_size(CollectingDispatcher(), t, {}))
    assert out == {}
    t = tracker(text="stop", intent="opt_out", slots={"requested_slot": "place"})
    assert asyncio.run(form.extract_place(CollectingDispatcher(), t, {})) == {}
    t = tracker(text="je ne sais pas", intent="deny", slots={"requested_slot": "place"})
    assert asyncio.run(form.extract_place(CollectingDispatcher(), t, {})) == {"place": A.SKIPPED}


# --- completion ------------------------------------------------------------------------------


def test_form_completion_confirms_with_reference(platform):
    t = tracker(slots={"flow": "need", "ticket_ref": "T-9", "place": "Gao", "household_size": "5"})
    _, dispatcher = run(A.ActionUpdateTicket(), t)
    assert dispatcher.messages[0]["response"] == "utter_ticket_done"
    assert dispatcher.messages[0]["ref"] == "T-9"


def test_completion_retries_ticket_creation_when_it_failed_before(platform):
    t = tracker(
        slots={
            "flow": "need",
            "ticket_ref": None,
            "category": "health",
            "place": "Gao",
            "place_code": "ML07",
            "household_size": "5",
        }
    )
    events, dispatcher = run(A.ActionUpdateTicket(), t)
    body = platform.last("POST", "/api/v1/tickets")["body"]
    assert body["place"] == "ML07" and body["household_size"] == 5 and body["category"] == "health"
    assert slot_events(events)["ticket_ref"] == "T-TEST1"
    assert responses(dispatcher) == ["utter_ticket_done"]


def test_household_report_registers_the_household(platform):
    t = tracker(
        slots={
            "flow": "register",
            "place": "Sévaré",
            "place_code": "ML05-SEV",
            "household_size": "7",
            "lang": "en",
        }
    )
    _, dispatcher = run(A.ActionUpdateTicket(), t)
    body = platform.last("POST", "/api/v1/households")["body"]
    assert body == {
        "sender": "c0ffee-sender",
        "size": 7,
        "place": "ML05-SEV",
        "origin": None,
        "language": "en",
    }
    assert dispatcher.messages[0]["response"] == "utter_household_registered"
    assert not [r for r in platform.requests if r["path"] == "/api/v1/tickets"]


def test_an_arrival_registers_the_household_with_its_origin_and_date(platform):
    """ "We came from Ménaka two weeks ago, now in Gao, 6 people": the registration carries
    where the household came from and when it left."""
    from datetime import date, timedelta

    start = tracker(
        text="nous sommes venus de menaka il y a 2 semaines, maintenant a gao, on est 6",
        intent="register_household",
        entities=[ent("origin", "menaka"), ent("place", "gao"), ent("household_size", "6")],
    )
    events, _ = run(A.ActionStartRegistration(), start)
    slots = slot_events(events)
    assert slots["displaced_since"] == (date.today() - timedelta(days=14)).isoformat()
    done = tracker(
        slots={
            **slots,
            "place": "Gao",
            "place_code": "ML07",
            "origin": "menaka",
            "household_size": "6",
        }
    )
    _, dispatcher = run(A.ActionUpdateTicket(), done)
    body = platform.last("POST", "/api/v1/households")["body"]
    assert body["origin"] == "menaka" and body["place"] == "ML07" and body["size"] == 6
    assert body["displaced_since"] == slots["displaced_since"]
    assert dispatcher.messages[0]["response"] == "utter_household_registered"


def test_a_place_right_after_came_from_is_the_origin_not_the_place(platform):
    text = "nous venons de boulkessi maintenant nous sommes a sevare 8 personnes"
    entities = [
        {"entity": "place", "value": "Boulkessi", "start": 15, "end": 24},
        {"entity": "place", "value": "Sévaré", "start": 50, "end": 56},
    ]
    start = tracker(text=text, intent="register_household", entities=entities)
    slots = slot_events(run(A.ActionStartRegistration(), start)[0])
    assert slots["origin"] == "Boulkessi" and slots["place"] == "Sévaré"

    # no cue before the place: the model's place stands
    plain = tracker(
        text="nous sommes a sevare",
        intent="register_household",
        entities=[{"entity": "place", "value": "Sévaré", "start": 14, "end": 20}],
    )
    slots = slot_events(run(A.ActionStartRegistration(), plain)[0])
    assert "origin" not in slots and "place" not in slots


@pytest.mark.parametrize(
    "text,days",
    [
        ("on est arrives hier a mopti", 1),
        ("nous sommes a gao depuis trois jours", 3),
        ("we left bourem two weeks ago", 14),
        ("an bora boni kabini tile saba", 3),
        ("an nana kabini kalo fila", 60),
        ("nous sommes 6 a sevare", None),
        ("on est 7 personnes depuis longtemps", None),
    ],
)
def test_displacement_date_from_the_senders_words(text, days):
    from datetime import date, timedelta

    today = date(2026, 12, 2)
    expected = None if days is None else today - timedelta(days=days)
    assert A.displaced_since(text, today) == expected


# --- protection call-back --------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,intent,expected",
    [
        ("oui", "affirm", "yes"),
        ("owo", "inform", "yes"),
        ("ayi", "deny", "no"),
        ("no he will hear", "deny", "no"),
    ],
)
def test_callback_answer(platform, text, intent, expected):
    form = A.ValidateCallbackForm()
    t = tracker(
        text=text, intent=intent, slots={"requested_slot": "callback_ok", "ticket_ref": "T-P"}
    )
    out = asyncio.run(form.extract_callback_ok(CollectingDispatcher(), t, {}))
    assert out == {"callback_ok": expected}


def test_other_text_during_callback_question_becomes_a_note(platform):
    form = A.ValidateCallbackForm()
    t = tracker(
        text="il revient ce soir",
        intent="protection_concern",
        slots={"requested_slot": "callback_ok", "ticket_ref": "T-P"},
        metadata={"raw_text": "il revient ce soir"},
    )
    out = asyncio.run(form.extract_callback_ok(CollectingDispatcher(), t, {}))
    assert out == {"callback_ok": "unknown"}
    assert platform.last("PATCH", "/api/v1/tickets/T-P")["body"] == {"note": "il revient ce soir"}


@pytest.mark.parametrize(
    "answer,flag,response",
    [("yes", True, "utter_callback_yes"), ("no", False, "utter_callback_no")],
)
def test_callback_answer_is_recorded(platform, answer, flag, response):
    t = tracker(slots={"callback_ok": answer, "ticket_ref": "T-P", "flow": "protection"})
    events, dispatcher = run(A.ActionRecordCallback(), t)
    assert platform.last("PATCH", "/api/v1/tickets/T-P")["body"] == {"callback_ok": flag}
    assert responses(dispatcher) == [response]
    assert slot_events(events)["callback_ok"] is None


# --- status, opt-out, erase, language ---------------------------------------------------------


def test_ticket_status_lists_tickets_in_the_sender_language(platform):
    platform.tickets = [
        {
            "reference": "T-AAAAA",
            "category": "wash",
            "status": "in_progress",
            "updated_at": "2026-01-02T10:00:00Z",
        },
        {
            "reference": "T-BBBBB",
            "category": "health",
            "status": "resolved",
            "updated_at": "2026-01-01T10:00:00Z",
        },
    ]
    _, dispatcher = run(A.ActionTicketStatus(), tracker(slots={"lang": "fr"}, sender="s/1"))
    assert platform.requests[-1]["path"] == "/api/v1/contacts/s%2F1/tickets"
    msg = dispatcher.messages[0]
    assert msg["response"] == "utter_status_list"
    assert msg["tickets"] == "T-AAAAA eau: en cours; T-BBBBB santé: traitée"


def test_ticket_status_never_names_a_protection_case(platform):
    """The status SMS stays in the phone's inbox: a protection case (every sensitive case,
    PSEA included, reaches the bot as "protection") gets the USSD menu's neutral word."""
    platform.tickets = [
        {
            "reference": "T-CCCCC",
            "category": "protection",
            "status": "triaged",
            "updated_at": "2026-01-02T10:00:00Z",
        }
    ]
    for lang, expected in (
        ("fr", "T-CCCCC demande: en cours"),
        ("en", "T-CCCCC request: in progress"),
        ("bm", "T-CCCCC nyininkali: b'a la"),
    ):
        _, dispatcher = run(A.ActionTicketStatus(), tracker(slots={"lang": lang}, sender="s/2"))
        listed = dispatcher.messages[0]["tickets"]
        assert listed == expected
        assert "protect" not in listed.lower() and "lakana" not in listed.lower()


def test_ticket_status_none_and_unavailable(platform):
    _, dispatcher = run(A.ActionTicketStatus(), tracker())
    assert responses(dispatcher) == ["utter_status_none"]
    platform.fail_with = 500
    _, dispatcher = run(A.ActionTicketStatus(), tracker())
    assert responses(dispatcher) == ["utter_status_unavailable"]


def test_opt_out_and_erase(platform):
    events, dispatcher = run(A.ActionOptOut(), tracker(active_loop="need_form"))
    assert platform.last("POST", "/api/v1/contacts/c0ffee-sender/opt-out")
    assert responses(dispatcher) == ["utter_opted_out"]
    assert any(e["event"] == "active_loop" and e["name"] is None for e in events)
    events, dispatcher = run(A.ActionEraseData(), tracker(slots={"lang": "bm"}))
    assert platform.last("POST", "/api/v1/contacts/c0ffee-sender/erase")
    assert responses(dispatcher) == ["utter_erase_done"]
    assert any(e["event"] == "reset_slots" for e in events)
    assert slot_events(events)["lang"] == "bm"
    platform.fail_with = 500
    _, dispatcher = run(A.ActionOptOut(), tracker())
    assert responses(dispatcher) == ["utter_request_noted"]


@pytest.mark.parametrize(
    "text,metadata,current,expected",
    [
        ("ji te yen an be gao", {"language": "fr"}, "fr", "bm"),  # clear message wins
        ("7", {"language": "bm"}, "fr", "bm"),  # neutral message: the contact's language
        ("Gao", {}, "en", "en"),  # nothing known: keep the language in use
        ("we need water please", {}, "fr", "en"),
    ],
)
def test_language_slot(text, metadata, current, expected):
    action = A.ValidatePredefinedSlots()
    t = tracker(text=text, metadata=metadata, slots={"lang": current})
    out = asyncio.run(action.extract_lang(CollectingDispatcher(), t, {}))
    assert out.get("lang", current) == expected


def test_slots_reset_to_none_are_not_validated_as_answers(platform):
    result, dispatcher = validate("validate_household_size", None, tracker(slots={"flow": "need"}))
    assert result == {"household_size": None} and dispatcher.messages == []
    result, dispatcher = validate("validate_place", None, tracker(slots={"flow": "need"}))
    assert result == {"place": None} and dispatcher.messages == []
    form = A.ValidateCallbackForm()
    out = asyncio.run(form.validate_callback_ok(None, CollectingDispatcher(), tracker(), {}))
    assert out == {"callback_ok": None}
    assert platform.requests == []


def test_number_answer_is_not_taken_as_a_place():
    form = A.ValidateNeedForm()
    t = tracker(
        text="sept",
        intent="inform",
        entities=[ent("household_size", "sept")],
        slots={"requested_slot": "place"},
    )
    assert asyncio.run(form.extract_place(CollectingDispatcher(), t, {})) == {}
