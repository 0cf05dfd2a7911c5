"""Tickets (every report, whatever the channel), their timeline, and surge incidents."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, event, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, Mapper, mapped_column

from core.crypto import EncryptedText, search_hash
from core.textfold import folded_words
from models.base import Base, str_enum, utcnow
from models.enums import (
    IncidentStatus,
    Language,
    TicketCategory,
    TicketKind,
    TicketPriority,
    TicketSource,
    TicketStatus,
)


class Incident(Base):
    """A surge: reports of the same category and place within a window, grouped."""

    __tablename__ = "incidents"
    __table_args__ = (Index("ix_incidents_open_lookup", "category", "place_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(12), unique=True)
    category: Mapped[TicketCategory] = mapped_column(str_enum(TicketCategory))
    place_id: Mapped[int | None] = mapped_column(ForeignKey("places.id"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"))
    status: Mapped[IncidentStatus] = mapped_column(
        str_enum(IncidentStatus), default=IncidentStatus.OPEN
    )
    report_count: Mapped[int] = mapped_column(default=0)
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_report_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]


# The statuses of an open ticket, as SQL: the predicate of the partial index and the one the
# queue's "open" filter writes literally (a planner matches a partial index only against
# literal values, not bound parameters).
OPEN_STATUS_VALUES = ("new", "triaged", "assigned", "in_progress", "waiting")
OPEN_STATUS_SQL = "status IN ({})".format(", ".join(f"'{value}'" for value in OPEN_STATUS_VALUES))


class Ticket(Base):
    __tablename__ = "tickets"
    __table_args__ = (
        # The queue's common filters; keyset pagination walks (created_at, id), newest first.
        Index("ix_tickets_queue", "status", "created_at", "id"),
        Index("ix_tickets_created_at_id", "created_at", "id"),
        Index("ix_tickets_team_status", "team_id", "status"),
        Index("ix_tickets_category_place", "category", "place_id"),
        Index("uq_tickets_source_message_id", "source_message_id", unique=True),
        # The console's default view: open tickets by first-response due time. Partial, so
        # it holds only the open tickets (a few percent of a hotline's history) and the
        # queue walks it in order instead of sorting (migration 0013_console_views).
        Index(
            "ix_tickets_open_due",
            "first_response_due_at",
            "id",
            postgresql_where=text(OPEN_STATUS_SQL),
            sqlite_where=text(OPEN_STATUS_SQL),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(12), unique=True)  # e.g. T-7K2Q9
    category: Mapped[TicketCategory] = mapped_column(str_enum(TicketCategory))
    # The kind of feedback (need, complaint, ..., psea); PSEA decides who may see the ticket.
    kind: Mapped[TicketKind] = mapped_column(
        str_enum(TicketKind),
        default=TicketKind.NEED,
        server_default=TicketKind.NEED.value,
        index=True,
    )
    priority: Mapped[TicketPriority] = mapped_column(
        str_enum(TicketPriority), default=TicketPriority.NORMAL
    )
    status: Mapped[TicketStatus] = mapped_column(str_enum(TicketStatus), default=TicketStatus.NEW)
    sensitive: Mapped[bool] = mapped_column(default=False, index=True)
    source: Mapped[TicketSource] = mapped_column(str_enum(TicketSource))
    language: Mapped[Language | None] = mapped_column(str_enum(Language, 8))
    # Free text is encrypted at rest (core.crypto.EncryptedText) and erased with the contact.
    summary: Mapped[str | None] = mapped_column(EncryptedText())
    description: Mapped[str | None] = mapped_column(EncryptedText())
    # Blind index for the queue's search box: " h1 h2 … " (sorted keyed hashes of the folded
    # words of summary and description, ``search_index_for``). NULL for protection tickets:
    # their words are never stored in a searchable form, not even hashed.
    search_index: Mapped[str | None] = mapped_column(Text)
    needs_review: Mapped[bool] = mapped_column(default=False)  # e.g. classified by the fallback
    callback_ok: Mapped[bool | None]
    callback_time: Mapped[str | None] = mapped_column(String(80))
    satisfaction: Mapped[int | None]

    place_id: Mapped[int | None] = mapped_column(ForeignKey("places.id"), index=True)
    household_id: Mapped[int | None] = mapped_column(
        ForeignKey("households.id", ondelete="SET NULL")
    )
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts.id", ondelete="SET NULL"), index=True
    )
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"))
    assignee_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    incident_id: Mapped[int | None] = mapped_column(
        ForeignKey("incidents.id", ondelete="SET NULL"), index=True
    )
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    # The inbound message this ticket was created from (the bot's API call and the fallback
    # both pass it): unique, so one message never yields two tickets, whichever of the two
    # got there first (issue 14). A plain integer, no foreign key: ``messages.ticket_id``
    # already points the other way, and retention deleting a message must not touch this.
    source_message_id: Mapped[int | None]

    # SLA: due times are computed from targets; the clock pauses while WAITING.
    first_response_due_at: Mapped[datetime | None]
    resolution_due_at: Mapped[datetime | None]
    first_responded_at: Mapped[datetime | None]
    sla_paused_at: Mapped[datetime | None]
    sla_paused_seconds: Mapped[int] = mapped_column(default=0)
    first_response_escalated_at: Mapped[datetime | None]
    resolution_escalated_at: Mapped[datetime | None]

    # One timestamp per state.
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    triaged_at: Mapped[datetime | None]
    assigned_at: Mapped[datetime | None]
    in_progress_at: Mapped[datetime | None]
    waiting_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    personal_data_purged_at: Mapped[datetime | None]
    # Bumped by every change of a work field (tickets.workflow): the console's optimistic
    # lock, so a form rendered before someone else's change cannot silently undo it.
    version: Mapped[int] = mapped_column(default=0, server_default="0")


class TicketViewer(Base):
    """Who has a ticket's page open (refreshed by the page while it is open): presence."""

    __tablename__ = "ticket_viewers"

    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    seen_at: Mapped[datetime] = mapped_column(index=True)


class TicketEvent(Base):
    """The timeline: every change to a ticket, who made it, and why."""

    __tablename__ = "ticket_events"
    __table_args__ = (Index("ix_ticket_events_ticket_created", "ticket_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(40))  # created, routed, status_changed, note, ...
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    actor_label: Mapped[str | None] = mapped_column(String(80))  # "bot", "sla", "system"
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Notes and replies: free text, encrypted at rest, erased with the contact.
    body: Mapped[str | None] = mapped_column(EncryptedText())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


def search_index_for(
    *texts: str | None, sensitive: bool | None, category: TicketCategory | str | None
) -> str | None:
    """The blind index of a ticket with these texts (None for protection tickets)."""
    if sensitive or category == TicketCategory.PROTECTION:
        return None
    words = {word for text in texts if text for word in folded_words(text)}
    if not words:
        return None
    return " " + " ".join(sorted(search_hash(word) for word in words)) + " "


@event.listens_for(Ticket, "before_insert")
@event.listens_for(Ticket, "before_update")
def _refresh_search_index(mapper: Mapper[Ticket], connection: Connection, target: Ticket) -> None:
    # Every ORM write of a ticket recomputes it, so a change of text, sensitivity or category
    # (re-categorised to protection) can never leave stale, searchable words behind.
    target.search_index = search_index_for(
        target.summary, target.description, sensitive=target.sensitive, category=target.category
    )
