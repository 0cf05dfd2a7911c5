"""Routed alerts to teams (SMS, email, webhook), each a delivery row with attempts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.crypto import EncryptedJSON
from models.base import Base, str_enum, utcnow
from models.enums import AlertKind, AlertStatus


class AlertChannel(Base):
    __tablename__ = "alert_channels"

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    kind: Mapped[AlertKind] = mapped_column(str_enum(AlertKind))
    name: Mapped[str] = mapped_column(String(120))
    # {"phone": ...} | {"email": ...} | {"url": ..., "secret": ...}: encrypted at rest.
    target: Mapped[dict[str, Any]] = mapped_column(EncryptedJSON())
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Alert(Base):
    __tablename__ = "alerts"
    __table_args__ = (
        CheckConstraint(
            "alert_channel_id IS NOT NULL OR recipient_user_id IS NOT NULL", name="has_recipient"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # A team channel, or a person: SLA escalations reach the team lead and the supervisors
    # themselves (by email), not only the team's shared channels.
    alert_channel_id: Mapped[int | None] = mapped_column(
        ForeignKey("alert_channels.id", ondelete="CASCADE"), index=True
    )
    recipient_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    ticket_id: Mapped[int | None] = mapped_column(
        ForeignKey("tickets.id", ondelete="SET NULL"), index=True
    )
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id", ondelete="SET NULL"))
    # new_ticket | escalation | surge ...; with dedupe_key it makes "alert once" enforceable.
    reason: Mapped[str] = mapped_column(String(40))
    dedupe_key: Mapped[str] = mapped_column(String(160), unique=True)
    status: Mapped[AlertStatus] = mapped_column(str_enum(AlertStatus), default=AlertStatus.PENDING)
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)  # never protection content
    attempt_count: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]


class AlertAttempt(Base):
    __tablename__ = "alert_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    attempt_no: Mapped[int]
    ok: Mapped[bool]
    status_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(String(500))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
