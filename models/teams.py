"""Response teams (health, WASH, shelter/NFI, protection) and their members."""

from __future__ import annotations

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, TimestampMixin


class Team(TimestampMixin, Base):
    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str | None] = mapped_column(Text)
    lead_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    auto_assign: Mapped[bool] = mapped_column(default=False)
    # Catches tickets no routing rule matched.
    is_default: Mapped[bool] = mapped_column(default=False)
    # Protection teams see sensitive tickets; their alerts never carry content.
    handles_protection: Mapped[bool] = mapped_column(default=False)
    # The PSEA focal points: the only people who see sexual exploitation and abuse reports
    # (ops_console.permissions); PSEA tickets are routed only to such a team (tickets.routing).
    handles_psea: Mapped[bool] = mapped_column(default=False, server_default=false())

    members: Mapped[list[TeamMember]] = relationship(
        back_populates="team", cascade="all, delete-orphan"
    )


class TeamMember(Base):
    __tablename__ = "team_members"
    __table_args__ = (UniqueConstraint("team_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    is_lead: Mapped[bool] = mapped_column(default=False)

    team: Mapped[Team] = relationship(back_populates="members")
