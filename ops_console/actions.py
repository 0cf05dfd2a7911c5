"""What a person does to a ticket from the console or the API: status, priority, category,
team, assignee, notes, replies, merges, incident links, revealing a number.

Every change writes a ``TicketEvent`` (the timeline) and only flushes: the request commits.
Values in events are ids and enum values, never personal data (notes are the exception: they
live in ``TicketEvent.body``, which is erased with the contact).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, false, select
from sqlalchemy.orm import Session

from core.phones import mask_phone
from models.audit import record_audit
from models.base import utcnow
from models.contacts import Contact
from models.enums import (
    IncidentStatus,
    TicketCategory,
    TicketKind,
    TicketPriority,
    TicketStatus,
    UserRole,
)
from models.messages import Message
from models.teams import Team, TeamMember
from models.tickets import Incident, Ticket, TicketEvent
from models.users import User
from ops_console.i18n import N_
from ops_console.permissions import Viewer, is_protection, is_psea


class ActionError(ValueError):
    """The action cannot be done; ``field`` names the input, ``key`` is a catalog message id."""

    def __init__(self, field: str, key: str, detail: str) -> None:
        super().__init__(detail)
        self.field = field
        self.key = key
        self.detail = detail


def _event(
    session: Session,
    ticket: Ticket,
    viewer: Viewer,
    kind: str,
    body: str | None = None,
    **data: Any,
) -> TicketEvent:
    from tickets.timeline import record_event

    return record_event(
        session,
        ticket,
        kind,
        actor_label=viewer.user.username,
        actor_user_id=viewer.user.id,
        body=body,
        **data,
    )


def _actor(viewer: Viewer) -> dict[str, Any]:
    return {"actor_label": viewer.user.username, "actor_user_id": viewer.user.id}


def change_status(
    session: Session,
    ticket: Ticket,
    viewer: Viewer,
    status: TicketStatus,
    *,
    notify: bool = True,
    outcome: str | None = None,
) -> bool:
    """Move the ticket to ``status`` (tickets.workflow pauses the SLA clock while WAITING and
    tells the sender about the changes that matter to them, unless ``notify`` is False).
    ``outcome`` (resolving or closing): what was done, sent to the person with "resolved".

    Resolving or closing a protection or PSEA case only asks for it: the ticket awaits the
    approval of a lead of its team (for PSEA, the PSEA focal lead), who approves by choosing
    the same status in turn (``tickets.workflow.close_with_approval``)."""
    from tickets import workflow

    if status == ticket.status:
        return False
    outcome = (outcome or "").strip() or None
    if outcome is not None and len(outcome) > MAX_OUTCOME_LENGTH:
        raise ActionError(
            "outcome",
            "error.outcome_too_long",
            N_("The outcome is too long: keep it to 300 characters (it goes out by SMS)."),
        )
    if status == TicketStatus.AWAITING_APPROVAL:
        raise ActionError(
            "status",
            "error.awaiting_approval_direct",
            N_("Choose Resolved or Closed: the case then waits for a lead's approval."),
        )
    if status in workflow.CLOSING_STATUSES and workflow.needs_closure_approval(ticket):
        try:
            workflow.close_with_approval(
                session, ticket, status, notify=notify, outcome=outcome, **_actor(viewer)
            )
        except workflow.ClosureRefused as exc:
            if exc.reason == "second_person":
                raise ActionError(
                    "status",
                    "error.closure_second_person",
                    N_(
                        "You asked to close this case: another person, a lead of the team, "
                        "must approve it."
                    ),
                ) from exc
            raise ActionError(
                "status",
                "error.closure_not_approver",
                N_("This case awaits the approval of a lead of its team."),
            ) from exc
        return True
    changed = workflow.change_status(
        session, ticket, status, notify=notify, outcome=outcome, **_actor(viewer)
    )
    return changed is not None


def change_priority(
    session: Session, ticket: Ticket, viewer: Viewer, priority: TicketPriority
) -> bool:
    from tickets import workflow

    return workflow.change_priority(session, ticket, priority, **_actor(viewer)) is not None


def change_category(
    session: Session, ticket: Ticket, viewer: Viewer, category: TicketCategory
) -> bool:
    """Re-categorise. Moving a ticket into or out of protection is a protection officer's
    call: anyone else would either hide a case from themselves or expose one."""
    if ticket.category == category:
        return False
    if is_psea(ticket):
        raise ActionError(
            "category",
            "error.psea_category",
            N_("A sexual exploitation and abuse case always stays a protection case."),
        )
    if TicketCategory.PROTECTION in (ticket.category, category) and not viewer.sees_protection:
        raise ActionError(
            "category",
            "error.protection_category",
            N_("Only protection officers move tickets into or out of protection."),
        )
    from tickets import workflow

    return workflow.change_category(session, ticket, category, **_actor(viewer)) is not None


def change_kind(session: Session, ticket: Ticket, viewer: Viewer, kind: TicketKind) -> bool:
    """Re-classify the kind. Anyone who sees a ticket may recognise it as PSEA (it then
    leaves their sight for the PSEA focal points'); only those who see PSEA cases may
    re-classify one as something else."""
    if ticket.kind == kind:
        return False
    if viewer.role == UserRole.SERVICE and kind != TicketKind.PSEA:
        raise ActionError("kind", "error.kind_service", N_("The bot may only report PSEA."))
    if is_psea(ticket) and not viewer.sees_psea:
        raise ActionError(
            "kind", "error.psea_kind", N_("Only the PSEA focal points re-classify a PSEA case.")
        )
    from tickets import workflow

    return workflow.change_kind(session, ticket, kind, **_actor(viewer)) is not None


def change_team(session: Session, ticket: Ticket, viewer: Viewer, team: Team | None) -> bool:
    if team is None or ticket.team_id == team.id:
        return False  # tickets always belong to a team once routed: no "clear"
    if viewer.role == UserRole.TEAM_MEMBER:
        raise ActionError(
            "team", "error.team_forbidden", N_("Team members cannot send tickets to other teams.")
        )
    if is_psea(ticket) != team.handles_psea:
        raise ActionError(
            "team",
            "error.team_psea",
            N_(
                "Sexual exploitation and abuse cases go only to the PSEA focal points, "
                "and only they receive them."
            ),
        )
    if is_protection(ticket) and not is_psea(ticket) and not team.handles_protection:
        raise ActionError(
            "team",
            "error.team_not_protection",
            N_("Protection tickets go only to teams that handle protection."),
        )
    from tickets import workflow

    decision = workflow.reroute(
        session, ticket, team, note="re-routed in the console", **_actor(viewer)
    )
    return decision is not None


def assign(
    session: Session,
    ticket: Ticket,
    viewer: Viewer,
    assignee: User | None,
    *,
    notify: bool = True,
) -> bool:
    new_id = assignee.id if assignee is not None else None
    if ticket.assignee_id == new_id:
        return False
    if assignee is not None:
        teams = frozenset(
            session.scalars(select(TeamMember.team_id).where(TeamMember.user_id == assignee.id))
        )
        if not viewer.may_assign_to(assignee, teams):
            raise ActionError(
                "assignee",
                "error.assignee_forbidden",
                N_("You cannot assign tickets to this person."),
            )
        if is_psea(ticket):
            if ticket.team_id not in teams:
                raise ActionError(
                    "assignee",
                    "error.assignee_not_psea",
                    N_("PSEA cases can only be assigned to the PSEA focal points."),
                )
        elif is_protection(ticket) and assignee.role != UserRole.PROTECTION_OFFICER:
            raise ActionError(
                "assignee",
                "error.assignee_not_protection",
                N_("Protection tickets can only be assigned to protection officers."),
            )
    from tickets import workflow

    return workflow.assign(session, ticket, new_id, notify=notify, **_actor(viewer)) is not None


def add_note(session: Session, ticket: Ticket, viewer: Viewer, body: str) -> TicketEvent:
    text = body.strip()
    if not text:
        raise ActionError("note", "error.note_empty", N_("The note is empty."))
    if len(text) > 5000:
        raise ActionError(
            "note", "error.note_too_long", N_("Notes are limited to 5000 characters.")
        )
    from tickets import workflow

    return workflow.add_note(session, ticket, text, **_actor(viewer))


MAX_OUTCOME_LENGTH = 300  # two SMS with the frame text: what was done, not a letter
MAX_REPLY_LENGTH = 1600  # ten concatenated GSM-7 segments: beyond that, call the person


def reply_by_sms(session: Session, ticket: Ticket, viewer: Viewer, body: str) -> Message:
    """Queue an SMS to the ticket's sender through the gateway (same path as the bot)."""
    text = body.strip()
    if not text:
        raise ActionError("body", "error.reply_empty", N_("The reply is empty."))
    if len(text) > MAX_REPLY_LENGTH:
        raise ActionError(
            "body", "error.reply_too_long", N_("Replies are limited to 1600 characters.")
        )
    contact = session.get(Contact, ticket.contact_id) if ticket.contact_id else None
    if contact is None or contact.phone is None:
        raise ActionError(
            "body", "error.no_contact", N_("This ticket has no phone number to reply to.")
        )
    from gateway.outbound import BodyTooLong, NoChannel, queue_sms
    from tickets import workflow

    try:
        message = queue_sms(session, contact=contact, body=text, ticket_id=ticket.id, kind="reply")
    except BodyTooLong as exc:
        raise ActionError(
            "body", "error.reply_too_long", N_("Too long for this channel: shorten the reply.")
        ) from exc
    except NoChannel as exc:
        raise ActionError(
            "body", "error.no_channel", N_("No active SMS channel can reach this number.")
        ) from exc
    if message is None:
        raise ActionError(
            "body",
            "error.opted_out",
            N_("The sender opted out of messages: call them instead."),
        )
    workflow.record_reply(session, ticket, message_id=message.id, **_actor(viewer))
    return message


def merge_into(session: Session, duplicate: Ticket, target: Ticket, viewer: Viewer) -> None:
    """Close ``duplicate`` as merged into ``target``; its messages move to the target."""
    if duplicate.id == target.id:
        raise ActionError(
            "target", "error.merge_self", N_("A ticket cannot be merged into itself.")
        )
    if target.merged_into_id is not None:
        raise ActionError(
            "target", "error.merge_chain", N_("That ticket was itself merged into another.")
        )
    if is_psea(duplicate) != is_psea(target) or is_protection(duplicate) != is_protection(target):
        raise ActionError(
            "target",
            "error.merge_protection",
            N_("Protection and non-protection tickets cannot be merged."),
        )
    duplicate.merged_into_id = target.id
    for message in session.scalars(select(Message).where(Message.ticket_id == duplicate.id)):
        message.ticket_id = target.id
    _event(session, duplicate, viewer, "merged_into", target=target.reference)
    _event(session, target, viewer, "merged_from", source=duplicate.reference)
    from tickets import workflow

    # Not "closing a case": it lives on in the target, so no approval is asked for.
    workflow.change_status(session, duplicate, TicketStatus.CLOSED, **_actor(viewer))


def linkable_incidents_clause(ticket: Ticket) -> ColumnElement[bool]:
    """The incidents ``ticket`` may join by hand: open ones of its own category, never any
    for a PSEA case (tickets.surges never groups one: an incident is seen and counted by
    place by the protection team, and its closing SMS goes to every member's sender)."""
    if is_psea(ticket):
        return false()
    return and_(Incident.category == ticket.category, Incident.status == IncidentStatus.OPEN)


def link_incident(
    session: Session, ticket: Ticket, viewer: Viewer, incident: Incident | None
) -> bool:
    new_id = incident.id if incident is not None else None
    if ticket.incident_id == new_id:
        return False
    _event(
        session,
        ticket,
        viewer,
        "incident_linked",
        old=ticket.incident_id,
        new=new_id,
    )
    ticket.incident_id = new_id
    if incident is not None:
        incident.report_count += 1
        incident.last_report_at = utcnow()
    return True


def reveal_phone(session: Session, contact: Contact, viewer: Viewer, *, ticket: Ticket) -> str:
    """The clear number, for calling back; always audited (who, which contact, for which
    ticket). The ticket is the line's ``ticket_id``, never its reference in the details: the
    audit page shows the line only to those who may see the ticket."""
    record_audit(
        session,
        action="phone.revealed",
        actor_label=viewer.user.username,
        actor_user_id=viewer.user.id,
        object_type="contact",
        object_id=contact.id,
        ticket_id=ticket.id,
        reason="ticket",
    )
    return contact.phone or ""


def masked(contact: Contact | None) -> str:
    if contact is None or contact.phone is None:
        return "—"
    return mask_phone(contact.phone)
