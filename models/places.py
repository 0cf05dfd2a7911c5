"""The gazetteer: Mali's administrative places and the spellings people type for them."""

from __future__ import annotations

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, str_enum
from models.enums import PlaceKind


class Place(Base):
    __tablename__ = "places"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)  # stable project code
    name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[PlaceKind] = mapped_column(str_enum(PlaceKind), index=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("places.id"), index=True)
    # Parent before the 2023 territorial reform, where it differs (e.g. Douentza under Mopti).
    former_parent_id: Mapped[int | None] = mapped_column(ForeignKey("places.id"))
    iso_code: Mapped[str | None] = mapped_column(String(16))
    latitude: Mapped[float | None]
    longitude: Mapped[float | None]

    parent: Mapped[Place | None] = relationship(remote_side=[id], foreign_keys=[parent_id])
    former_parent: Mapped[Place | None] = relationship(
        remote_side=[id], foreign_keys=[former_parent_id]
    )
    aliases: Mapped[list[PlaceAlias]] = relationship(
        back_populates="place", cascade="all, delete-orphan"
    )


class PlaceAlias(Base):
    __tablename__ = "place_aliases"
    __table_args__ = (UniqueConstraint("place_id", "normalized"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    place_id: Mapped[int] = mapped_column(ForeignKey("places.id", ondelete="CASCADE"), index=True)
    alias: Mapped[str] = mapped_column(String(120))
    normalized: Mapped[str] = mapped_column(String(120), index=True)

    place: Mapped[Place] = relationship(back_populates="aliases")
