"""Contacts: find or create the person behind a phone number, language, opt-out state.

Lookups go through the keyed hash of the E.164 number; the number itself is encrypted.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.crypto import lookup_hash
from core.phones import normalize_phone
from models.base import utcnow
from models.contacts import Contact
from models.enums import Language


def find_contact_by_phone(session: Session, phone: str) -> Contact | None:
    e164 = normalize_phone(phone)
    return session.scalar(select(Contact).where(Contact.phone_hash == lookup_hash(e164)))


def find_contact_by_public_id(session: Session, public_id: str) -> Contact | None:
    return session.scalar(select(Contact).where(Contact.public_id == public_id))


def get_or_create_contact(
    session: Session, phone: str, *, language: Language | None = None
) -> Contact:
    """The contact for ``phone`` (any format phonenumbers accepts), created if new.

    Safe under concurrent first messages from the same number: the unique phone hash makes
    the loser of the race re-read the winner's row (inside a savepoint, so the caller's
    transaction survives).
    """
    e164 = normalize_phone(phone)
    digest = lookup_hash(e164)
    existing = session.scalar(select(Contact).where(Contact.phone_hash == digest))
    if existing is not None:
        return existing
    contact = Contact(phone=e164, phone_hash=digest, language=language)
    try:
        with session.begin_nested():
            session.add(contact)
            session.flush()
    except IntegrityError:
        winner = session.scalar(select(Contact).where(Contact.phone_hash == digest))
        if winner is None:
            raise
        return winner
    return contact


def set_contact_language(contact: Contact, language: Language) -> None:
    contact.language = language


def opt_out(contact: Contact) -> bool:
    """Mark the contact as opted out; True if that changed anything."""
    if contact.opted_out_at is not None:
        return False
    contact.opted_out_at = utcnow()
    return True


def opt_in(contact: Contact) -> bool:
    """Clear the opt-out; True if that changed anything. Erased contacts stay erased."""
    if contact.opted_out_at is None or contact.erased_at is not None:
        return False
    contact.opted_out_at = None
    return True
