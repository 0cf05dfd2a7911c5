"""The append-only audit log (UPDATE and DELETE are refused by a database trigger)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base, utcnow


class AuditLog(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_object", "object_type", "object_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor_label: Mapped[str] = mapped_column(String(80))  # username, "cli", "system", "retention"
    action: Mapped[str] = mapped_column(String(60))  # e.g. phone.revealed, contact.erased
    object_type: Mapped[str | None] = mapped_column(String(40))
    object_id: Mapped[str | None] = mapped_column(String(40))
    # The ticket this line concerns (no foreign key: rows are never updated): the audit page
    # shows it only to those who may see that ticket (ops_console.permissions).
    ticket_id: Mapped[int | None] = mapped_column(index=True)
    # Never personal data here: counts, ids, field names.
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


# Writing to the log: details carry ids and counts, never personal data.
def record_audit(
    session: Session,
    *,
    action: str,
    actor_label: str,
    actor_user_id: int | None = None,
    object_type: str | None = None,
    object_id: object | None = None,
    ticket_id: int | None = None,
    **details: Any,
) -> AuditLog:
    """Append one line. ``ticket_id``: the ticket the line concerns (a phone revealed for a
    ticket...): the audit page then shows the line only to those who may see that ticket, so
    never put a ticket reference in ``details``."""
    entry = AuditLog(
        action=action,
        actor_label=actor_label,
        actor_user_id=actor_user_id,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id),
        ticket_id=ticket_id,
        details=details,
    )
    session.add(entry)
    return entry
