"""Writing to the append-only audit log. Details carry ids and counts, never personal data."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from models.audit import AuditLog


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
