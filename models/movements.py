"""Population movements: flows counted at flow-monitoring points (entry and transit points),
and the moves registered households report themselves."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import ForeignKey, String, false
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, str_enum, utcnow
from models.enums import MovementChannel, MovementReason, MovementSource, MovementStatus


class Movement(Base):
    __tablename__ = "movements"

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[MovementSource] = mapped_column(str_enum(MovementSource, 20), index=True)
    observed_on: Mapped[date] = mapped_column(index=True)
    # The flow-monitoring point: the place it is in, and its own name ("gare routière de
    # Sévaré"). Both empty for a household's own report.
    point_place_id: Mapped[int | None] = mapped_column(ForeignKey("places.id"), index=True)
    point_name: Mapped[str | None] = mapped_column(String(120))
    origin_place_id: Mapped[int | None] = mapped_column(ForeignKey("places.id"), index=True)
    destination_place_id: Mapped[int] = mapped_column(ForeignKey("places.id"), index=True)
    people: Mapped[int]
    reason: Mapped[MovementReason | None] = mapped_column(str_enum(MovementReason, 16))
    status: Mapped[MovementStatus] = mapped_column(str_enum(MovementStatus, 16))
    household_id: Mapped[int | None] = mapped_column(
        ForeignKey("households.id", ondelete="SET NULL"), index=True
    )
    recorded_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # How it was entered (NULL for rows from before 0015), and for an SMS or USSD count the
    # enumerator's phone, as its contact (the number itself stays in ``contacts``).
    channel: Mapped[MovementChannel | None] = mapped_column(str_enum(MovementChannel, 8))
    enumerator_contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    # Told through the phone simulator: left out of dashboards and exports like its tickets.
    is_test: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(default=utcnow, nullable=False)


class EnumeratorPhone(Base):
    """A console user's phone registered for flow monitoring: only these phones may send a
    ``FLOW`` SMS, and what they send is recorded as that user's count."""

    __tablename__ = "enumerator_phones"

    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, nullable=False)
