"""People who write to the hotline, and the households they register."""

from __future__ import annotations

import secrets
from datetime import date, datetime

from sqlalchemy import ForeignKey, String, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.crypto import EncryptedText
from models.base import Base, TimestampMixin, str_enum, utcnow
from models.enums import HouseholdStatus, Language


def new_public_id() -> str:
    """Opaque id handed to the bot and integrators instead of the phone number."""
    return "c_" + secrets.token_urlsafe(16)


class Contact(TimestampMixin, Base):
    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True, default=new_public_id)
    # Encrypted at rest; ``phone_hash`` (keyed HMAC of the E.164 number) is what lookups use.
    # Both become NULL when the contact is erased.
    phone: Mapped[str | None] = mapped_column(EncryptedText())
    phone_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    language: Mapped[Language | None] = mapped_column(str_enum(Language, 8))
    opted_out_at: Mapped[datetime | None]
    erased_at: Mapped[datetime | None]
    last_inbound_at: Mapped[datetime | None]
    # Created by the console's phone simulator: left out of dashboards, reports and exports,
    # and never sent to a real provider.
    is_test: Mapped[bool] = mapped_column(default=False, server_default=false())

    households: Mapped[list[Household]] = relationship(back_populates="contact")

    @property
    def is_opted_out(self) -> bool:
        return self.opted_out_at is not None or self.erased_at is not None


class Household(TimestampMixin, Base):
    __tablename__ = "households"

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts.id", ondelete="SET NULL"), index=True
    )
    size: Mapped[int | None]
    origin_place_id: Mapped[int | None] = mapped_column(ForeignKey("places.id"), index=True)
    current_place_id: Mapped[int | None] = mapped_column(ForeignKey("places.id"), index=True)
    displaced_since: Mapped[date | None]
    status: Mapped[HouseholdStatus | None] = mapped_column(str_enum(HouseholdStatus, 16))
    # A duplicate merged into another household (tickets.households.merge_households): kept
    # for the audit trail, left out of every list and count, pointing to the one kept.
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("households.id"), index=True)

    contact: Mapped[Contact | None] = relationship(back_populates="households")


class HouseholdContact(Base):
    """A further phone of a household, as the contact that number belongs to: numbers stay in
    ``contacts`` (encrypted, hashed, erased and re-keyed there), never copied here."""

    __tablename__ = "household_contacts"

    household_id: Mapped[int] = mapped_column(
        ForeignKey("households.id", ondelete="CASCADE"), primary_key=True
    )
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow, nullable=False)
