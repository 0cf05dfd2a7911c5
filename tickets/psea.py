"""PSEA — sexual exploitation and abuse by aid workers (issue 15): the one home of the rules
the tickets domain applies to such a report.

- It is always protection, sensitive and urgent (``tickets.intake``, ``tickets.workflow``).
- It goes only to a PSEA focal-point team (``Team.handles_psea``; ``tickets.routing``),
  never to the team the allegation may concern nor to regular protection staff, unless an
  administrator set ``DEME_PSEA_SHARE_WITH_PROTECTION``.
- Its alerts say nothing but "a new case needs you, log in" (``tickets.alerts``); it is never
  grouped into a surge (``tickets.surges``); its escalations go to the PSEA team's leads only.
- Closing it needs the approval of the PSEA team's lead (``tickets.workflow``).

Who may *see* it is decided in ``ops_console.permissions`` (the Viewer), from the same team
flag.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.enums import TicketCategory, TicketKind, TicketPriority
from models.teams import Team, TeamMember
from models.tickets import Ticket

# The SEA screen (does a text report exploitation or abuse by an aid worker?) lives in
# tickets.psea_screen, pure, so the keyword fallback imports it without a database.
from tickets.psea_screen import PseaScreen, screen

PSEA_CATEGORY = TicketCategory.PROTECTION
PSEA_PRIORITY = TicketPriority.URGENT


def is_psea(ticket: Ticket) -> bool:
    return ticket.kind == TicketKind.PSEA


def psea_teams(session: Session) -> list[Team]:
    """The PSEA focal-point teams, oldest first (the first one receives new cases)."""
    return list(session.scalars(select(Team).where(Team.handles_psea.is_(True)).order_by(Team.id)))


def psea_team_ids_of(session: Session, user_id: int) -> frozenset[int]:
    """The PSEA focal-point teams ``user_id`` belongs to (empty for everyone else)."""
    rows = session.scalars(
        select(TeamMember.team_id)
        .join(Team, Team.id == TeamMember.team_id)
        .where(TeamMember.user_id == user_id, Team.handles_psea.is_(True))
    )
    return frozenset(rows)


def make_psea(ticket: Ticket) -> None:
    """What a ticket becomes when it is (re)classified as PSEA (never undone automatically)."""
    ticket.kind = TicketKind.PSEA
    ticket.category = PSEA_CATEGORY
    ticket.sensitive = True
    ticket.priority = PSEA_PRIORITY


__all__ = [
    "PSEA_CATEGORY",
    "PSEA_PRIORITY",
    "PseaScreen",
    "is_psea",
    "make_psea",
    "psea_team_ids_of",
    "psea_teams",
    "screen",
]
