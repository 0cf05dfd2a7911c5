"""Complete walks, per language, ending in a ticket or a household checked in the database."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from sqlalchemy import select
from ussd.helpers import Phone

from core.crypto import lookup_hash
from core.db import session_scope
from core.phones import normalize_phone
from models.contacts import Contact, Household
from models.enums import Language, TicketCategory, TicketSource
from models.places import Place
from models.tickets import Ticket
from models.ussd import UssdSession

LANGUAGE_KEY = {Language.FRENCH: "1", Language.BAMBARA: "2", Language.ENGLISH: "3"}
HELP_KEY = {TicketCategory.HEALTH: "1", TicketCategory.WASH: "2", TicketCategory.SHELTER_NFI: "3"}
# Words that would tell someone looking over the caller's shoulder what the report is about.
REVEALING = re.compile(
    r"protect|violen|abus|viol\b|secur|sécur|safety|danger|agress|assault|gbv|lakana|binkan|"
    r"gosi|tooro|marifa|confiden|gundo",
    re.IGNORECASE,
)


def contact_of(session: Any, phone: Phone) -> Contact:
    digest = lookup_hash(normalize_phone(phone.number))
    contact = session.scalar(select(Contact).where(Contact.phone_hash == digest))
    assert contact is not None
    return contact


def place_code(session: Any, place_id: int | None) -> str | None:
    return None if place_id is None else session.get(Place, place_id).code


def option(screen: str, label: str) -> str:
    """The number in front of ``label`` on a list screen."""
    found = re.search(rf"^(\d) {re.escape(label)}$", screen, flags=re.MULTILINE)
    assert found, (label, screen)
    return found.group(1)


def choose(phone: Phone, label: str) -> None:
    """On a paginated list: page with "9" until ``label`` shows, then pick it."""
    for _ in range(10):
        if re.search(rf"^\d {re.escape(label)}$", phone.screen, flags=re.MULTILINE):
            phone.send(option(phone.screen, label))
            return
        assert "\n9 " in phone.screen, (label, phone.screen)
        phone.send("9")
    pytest.fail(f"{label} never shown")


def pick_from_lists(phone: Phone, region: str, cercle: str | None) -> None:
    choose(phone, region)
    if cercle is not None:
        choose(phone, cercle)
    else:
        phone.send("1")  # the whole region


def start(client: Any, language: Language) -> Phone:
    phone = Phone(client)
    phone.dial()
    phone.send(LANGUAGE_KEY[language])
    return phone


@pytest.mark.parametrize("language", list(LANGUAGE_KEY))
def test_register_household_from_the_lists(
    client: Any, at_channel: int, places_seeded: None, language: Language
) -> None:
    phone = start(client, language)
    phone.walk("1", "1")  # register → choose from the list
    pick_from_lists(phone, "Mopti", "Djenné")
    phone.send("7")
    end = phone.send("1")
    assert end.startswith("END ") and "7" in end and "Djenné" in end
    with session_scope() as session:
        contact = contact_of(session, phone)
        assert contact.language is language
        household = session.scalar(select(Household).where(Household.contact_id == contact.id))
        assert household is not None and household.size == 7
        assert place_code(session, household.current_place_id) == "ML0502"


@pytest.mark.parametrize("language", list(LANGUAGE_KEY))
@pytest.mark.parametrize(
    ("category", "typed", "expected_place"),
    [
        (TicketCategory.HEALTH, "Sevare", "ML0501002"),
        (TicketCategory.WASH, "commune 6", "ML0006"),
        (TicketCategory.SHELTER_NFI, "tbk", "ML06"),
    ],
)
def test_ask_for_help_with_a_typed_place(
    client: Any,
    at_channel: int,
    places_seeded: None,
    language: Language,
    category: TicketCategory,
    typed: str,
    expected_place: str,
) -> None:
    phone = start(client, language)
    phone.walk("2", HELP_KEY[category], "2", typed)
    assert "\n1 " in phone.screen and "\n2 " in phone.screen  # the confirmation question
    phone.walk("1", "12")
    end = phone.send("1")
    reference = re.search(r"T-[0-9A-Z]{5}", end)
    assert end.startswith("END ") and reference, end
    with session_scope() as session:
        ticket = session.scalar(select(Ticket).where(Ticket.reference == reference.group(0)))
        assert ticket is not None
        assert ticket.category is category
        assert ticket.source is TicketSource.USSD
        assert ticket.language is language
        assert place_code(session, ticket.place_id) == expected_place
        assert ticket.contact_id == contact_of(session, phone).id
        household = session.get(Household, ticket.household_id)
        assert household is not None and household.size == 12
        row = session.scalar(select(UssdSession).where(UssdSession.session_id == phone.session_id))
        assert row is not None and row.completed and row.state["out"] == end


@pytest.mark.parametrize("language", list(LANGUAGE_KEY))
def test_ask_for_help_from_the_lists(
    client: Any, at_channel: int, places_seeded: None, language: Language
) -> None:
    phone = start(client, language)
    phone.walk("2", "1", "1")
    pick_from_lists(phone, "Bamako", "Commune VI")
    phone.walk("3", "1")
    reference = re.search(r"T-[0-9A-Z]{5}", phone.screen)
    assert reference, phone.screen
    with session_scope() as session:
        ticket = session.scalar(select(Ticket).where(Ticket.reference == reference.group(0)))
        assert ticket is not None and ticket.category is TicketCategory.HEALTH
        assert place_code(session, ticket.place_id) == "ML0006"
        assert session.get(Household, ticket.household_id).size == 3


@pytest.mark.parametrize("language", list(LANGUAGE_KEY))
@pytest.mark.parametrize(
    ("inputs", "callback_ok", "when"),
    [(("1", "1"), True, "morning"), (("1", "3"), True, "evening"), (("2",), False, None)],
)
def test_protection_is_discreet(
    client: Any,
    at_channel: int,
    places_seeded: None,
    language: Language,
    inputs: tuple[str, ...],
    callback_ok: bool,
    when: str | None,
) -> None:
    phone = start(client, language)
    phone.send("3")
    phone.walk("1", *inputs)  # about the caller
    after_choice = phone.screens[2:]  # from the screen that answers "3"
    assert after_choice[-1].startswith("END ")
    for screen in after_choice:
        assert not REVEALING.search(screen), screen
    # No question beyond whom it is about and the call back.
    assert len(after_choice) == len(inputs) + 2
    reference = re.search(r"T-[0-9A-Z]{5}", phone.screen)
    assert reference
    with session_scope() as session:
        ticket = session.scalar(select(Ticket).where(Ticket.reference == reference.group(0)))
        assert ticket is not None
        assert ticket.category is TicketCategory.PROTECTION
        assert ticket.sensitive is True
        assert ticket.callback_ok is callback_ok
        assert ticket.callback_time == when
        assert ticket.description is None and ticket.place_id is None
    # The status screen lists it without naming it.
    phone.dial()
    status = phone.send("4")
    assert reference.group(0) in status and not REVEALING.search(status)


PSEA_REVEALING = re.compile(r"sex|sexe|abus|exploit|psea|coucher|sunogo", re.IGNORECASE)


@pytest.mark.parametrize("language", list(LANGUAGE_KEY))
def test_a_problem_with_an_aid_worker_is_a_psea_case_said_discreetly(
    client: Any, at_channel: int, places_seeded: None, language: Language
) -> None:
    from models.enums import TicketKind, TicketPriority

    phone = start(client, language)
    phone.send("3")
    topic = phone.send("2")  # "a person working for an organisation"
    end = phone.send("2")  # no call back
    assert end.startswith("END ")
    for screen in phone.screens[2:]:
        assert not REVEALING.search(screen) and not PSEA_REVEALING.search(screen), screen
    assert topic.startswith("CON ")
    assert "24 h" in end  # when: within the promised time; and anonymity is offered
    assert re.search(r"anonym|togo dogo", end, re.IGNORECASE), end
    reference = re.search(r"T-[0-9A-Z]{5}", end)
    assert reference
    with session_scope() as session:
        ticket = session.scalar(select(Ticket).where(Ticket.reference == reference.group(0)))
        assert ticket is not None and ticket.kind is TicketKind.PSEA
        assert ticket.category is TicketCategory.PROTECTION and ticket.sensitive is True
        assert ticket.priority is TicketPriority.URGENT
        assert ticket.callback_ok is False


def test_status_lists_open_requests(client: Any, at_channel: int, places_seeded: None) -> None:
    phone = start(client, Language.ENGLISH)
    assert phone.send("4") == "END You have no open requests."
    phone.dial()
    phone.walk("2", "2", "2", "Gao", "1", "4", "1")
    reference = re.search(r"T-[0-9A-Z]{5}", phone.screen)
    assert reference
    phone.dial()
    assert phone.screen.startswith("CON Deme - IOM")  # the language is remembered
    assert phone.send("4") == f"END Your requests:\n{reference.group(0)} Water & hygiene: received"


def test_language_is_remembered_and_can_be_changed(
    client: Any, at_channel: int, places_seeded: None
) -> None:
    phone = start(client, Language.BAMBARA)
    assert phone.screen.startswith("CON Deme - OIM\n1 I sigiyoro")
    phone.dial()
    assert phone.screen.startswith("CON Deme - OIM\n1 I sigiyoro")
    phone.walk("6", "3")
    assert phone.screen.startswith("CON Deme - IOM")
    with session_scope() as session:
        assert contact_of(session, phone).language is Language.ENGLISH


def test_stop_and_restart_messages(client: Any, at_channel: int, places_seeded: None) -> None:
    phone = start(client, Language.FRENCH)
    assert phone.walk("5", "1").startswith("END Vous ne recevrez plus")
    with session_scope() as session:
        assert contact_of(session, phone).opted_out_at is not None
    phone.dial()
    assert phone.walk("5", "2").startswith("END Vous recevrez à nouveau")
    with session_scope() as session:
        assert contact_of(session, phone).opted_out_at is None


def test_erase_my_data(
    client: Any, at_channel: int, places_seeded: None, ussd_redis: Any | None
) -> None:
    phone = start(client, Language.FRENCH)
    phone.walk("2", "1", "2", "Kati", "1", "5", "1")
    with session_scope() as session:
        contact_id = contact_of(session, phone).id
    phone.dial()
    phone.walk("5", "3")
    assert phone.send("2").startswith("CON 1 Ne plus recevoir")  # "no" goes back
    phone.walk("3")
    assert phone.send("1") == "END Vos données ont été effacées. Merci."
    with session_scope() as session:
        contact = session.get(Contact, contact_id)
        assert contact is not None
        assert contact.erased_at is not None and contact.phone is None
        assert (
            session.scalars(select(UssdSession).where(UssdSession.contact_id == contact_id)).all()
            == []
        )
    # Only a short-lived tombstone is left (in Redis, on the server stack), so a retried hop
    # gets the same answer ...
    if ussd_redis is not None:
        [key] = list(ussd_redis.scan_iter(match="deme:ussd:*"))
        assert ussd_redis.ttl(key) <= 120
        tombstone = json.loads(ussd_redis.get(key))
        assert tombstone["d"] == {} and tombstone["st"] == [] and tombstone["cid"] is None
    assert phone.retry() == "END Vos données ont été effacées. Merci."
    with session_scope() as session:
        assert session.scalar(select(Contact).where(Contact.erased_at.is_(None))) is None
    # ... and a new call is a stranger again.
    assert phone.dial().startswith("CON Langue / Kan / Language")


def test_a_retried_final_hop_records_once(
    client: Any, at_channel: int, places_seeded: None, ussd_redis: Any | None
) -> None:
    phone = start(client, Language.FRENCH)
    end = phone.walk("2", "3", "2", "Gao", "1", "4", "1")
    assert phone.retry() == end
    # Even with the Redis state gone (server stack), the session's row replays the answer.
    if ussd_redis is not None:
        for key in ussd_redis.scan_iter(match="deme:ussd:*"):
            ussd_redis.delete(key)
    assert phone.retry() == end
    with session_scope() as session:
        assert len(session.scalars(select(Ticket)).all()) == 1
