"""Phone numbers are encrypted at rest, found by keyed hash, and created once under races."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from core.crypto import decrypt_text, encrypt_text, lookup_hash
from core.db import get_sessionmaker
from core.phones import InvalidPhoneNumber, mask_phone, normalize_phone
from models import Contact
from tickets.contacts import find_contact_by_phone, get_or_create_contact


def test_phone_round_trips_and_is_not_stored_in_clear(db: Session) -> None:
    contact = get_or_create_contact(db, "76 12 34 56")
    db.commit()
    db.expunge_all()
    raw = db.execute(text("SELECT phone, phone_hash FROM contacts")).one()
    assert "76123456" not in raw.phone and "22376" not in raw.phone
    assert raw.phone.startswith("gAAAA")  # a Fernet token
    assert raw.phone_hash == lookup_hash("+22376123456")
    again = find_contact_by_phone(db, "+223 76 12 34 56")
    assert again is not None and again.id == contact.id
    assert again.phone == "+22376123456"


def test_encryption_is_randomised_but_lookup_is_stable() -> None:
    assert encrypt_text("+22376123456") != encrypt_text("+22376123456")
    assert decrypt_text(encrypt_text("Sévaré ɛ ɔ")) == "Sévaré ɛ ɔ"
    assert lookup_hash("+22376123456") == lookup_hash("+22376123456")


@pytest.mark.parametrize(
    ("typed", "e164"),
    [
        ("76123456", "+22376123456"),
        ("+223 76 12 34 56", "+22376123456"),
        ("0022366123456", "+22366123456"),
        ("+14155550123", "+14155550123"),
    ],
)
def test_normalize_phone(typed: str, e164: str) -> None:
    assert normalize_phone(typed) == e164


@pytest.mark.parametrize("bad", ["", "hello", "123", "+223 12"])
def test_normalize_phone_rejects_with_a_reason(bad: str) -> None:
    with pytest.raises(InvalidPhoneNumber, match="phone number"):
        normalize_phone(bad)


def test_mask_phone_hides_all_but_country_and_last_two() -> None:
    masked = mask_phone("+22376123456")
    assert masked.startswith("+223") and masked.endswith("56")
    assert "7612" not in masked.replace(" ", "")


def test_concurrent_first_messages_create_one_contact(db: Session) -> None:
    maker = get_sessionmaker()

    def create(_: int) -> int:
        with maker() as session:
            contact = get_or_create_contact(session, "+22370000001")
            session.commit()
            return contact.id

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = set(pool.map(create, range(32)))
    assert len(ids) == 1
    assert db.scalar(select(func.count()).select_from(Contact)) == 1


def test_one_normaliser_reads_national_numbers_in_the_deployments_country(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No hard-coded Mali: a deployment in Burkina Faso reads "70 12 34 56" as +226."""
    from core.settings import get_settings

    monkeypatch.setenv("DEME_DEFAULT_COUNTRY", "BF")
    get_settings.cache_clear()
    try:
        assert normalize_phone("70 12 34 56") == "+22670123456"
    finally:
        monkeypatch.delenv("DEME_DEFAULT_COUNTRY")
        get_settings.cache_clear()
    assert normalize_phone("76 12 34 56") == "+22376123456"


def test_one_normaliser_takes_international_digits_without_their_plus() -> None:
    """Aggregators (SMS and USSD alike) drop the "+": the same number, one contact."""
    assert normalize_phone("22376123456") == normalize_phone("+223 76 12 34 56")
    with pytest.raises(InvalidPhoneNumber):
        normalize_phone("12345678901234")
