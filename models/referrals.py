"""Referral pathways (issue 15): the service directory (partner organisations and their
services), the person's consent per purpose, and referrals of a ticket to a partner service.

What a referral shares is a snapshot taken when it is made (``Referral.shared``, encrypted at
rest: it may hold a summary or a phone number), limited to the fields of the organisation's
data-sharing agreement (``PartnerOrganisation.shared_fields``), and to the minimum for
protection and PSEA cases (``tickets.referrals``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, true
from sqlalchemy.orm import Mapped, mapped_column

from core.crypto import EncryptedJSON, EncryptedText
from models.base import Base, TimestampMixin, str_enum, utcnow
from models.enums import (
    ConsentPurpose,
    ConsentSource,
    ReferralMethod,
    ReferralStatus,
    TicketCategory,
)


class PartnerOrganisation(TimestampMixin, Base):
    """An agency the hotline refers people to, and what it may receive about them."""

    __tablename__ = "partner_organisations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(160), unique=True)
    contact_email: Mapped[str | None] = mapped_column(String(254))
    contact_phone: Mapped[str | None] = mapped_column(String(32))  # E.164, an office line
    referral_method: Mapped[ReferralMethod] = mapped_column(str_enum(ReferralMethod, 16))
    # The data-sharing agreement: which ticket fields may be shared (tickets.referrals.FIELDS).
    shared_fields: Mapped[list[str]] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(default=True, server_default=true())


class PartnerService(TimestampMixin, Base):
    """One service of an organisation: a sector in some places (place codes; a ticket in a
    place under one of them matches), with its hours, languages and focal point."""

    __tablename__ = "partner_services"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("partner_organisations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(160))
    category: Mapped[TicketCategory] = mapped_column(str_enum(TicketCategory), index=True)
    place_codes: Mapped[list[str]] = mapped_column(JSON, default=list)
    hours: Mapped[str | None] = mapped_column(String(160))
    languages: Mapped[list[str]] = mapped_column(JSON, default=list)
    focal_point: Mapped[str | None] = mapped_column(String(160))
    active: Mapped[bool] = mapped_column(default=True, server_default=true())


class Consent(Base):
    """One answer of a person about one purpose; the newest answer per purpose counts."""

    __tablename__ = "consents"
    __table_args__ = (Index("ix_consents_contact_purpose", "contact_id", "purpose", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    purpose: Mapped[ConsentPurpose] = mapped_column(str_enum(ConsentPurpose, 24))
    given: Mapped[bool]
    source: Mapped[ConsentSource] = mapped_column(str_enum(ConsentSource, 16))
    recorded_by_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    # The ticket the question was asked about (a call about that report), if any.
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Referral(TimestampMixin, Base):
    __tablename__ = "referrals"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("partner_services.id"), index=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("partner_organisations.id"))
    consent_id: Mapped[int | None] = mapped_column(ForeignKey("consents.id", ondelete="SET NULL"))
    # What the partner sees: field name → value, taken when the referral was made.
    shared: Mapped[dict[str, Any] | None] = mapped_column(EncryptedJSON())
    # A protection or PSEA case when referred (the minimum was shared; PSEA: focal points only).
    sensitive: Mapped[bool] = mapped_column(default=False)
    psea: Mapped[bool] = mapped_column(default=False)
    status: Mapped[ReferralStatus] = mapped_column(
        str_enum(ReferralStatus, 16), default=ReferralStatus.SENT
    )
    follow_up_due_at: Mapped[datetime | None] = mapped_column(index=True)
    created_by_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    # The partner link: signed with DEME_SECRET_KEY over (id, expiry, nonce); a new nonce
    # voids every earlier link.
    link_nonce: Mapped[str] = mapped_column(String(32))
    link_expires_at: Mapped[datetime]
    partner_note: Mapped[str | None] = mapped_column(EncryptedText())
    responded_at: Mapped[datetime | None]
    last_viewed_at: Mapped[datetime | None]
