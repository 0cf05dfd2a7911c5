"""The conversation step of the message path (platform side): inbound SMS → bot → replies.

Task ``conversation.handle_message(message_id)`` runs after the gateway has dealt with
opt-out keywords and flood control. Messages of one sender are handed over in order and one
at a time (a per-contact lock, then every earlier unhandled message first), because Rasa's
open-source lock store is not atomic across instances.

With ``DEME_BOT=rasa`` the text goes to the Rasa server (its actions create tickets through
/api/v1). When Rasa is unreachable, too slow or broken, when the message already waited
longer than ``DEME_BOT_MAX_QUEUE_SECONDS`` in a backlog — or with ``DEME_BOT=fallback`` — the
keyword classifier in ``bot.fallback`` handles the message here, so the ticket is still
created (flagged for review) and the sender still gets an answer. Nothing is dropped.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from conversation.client import BotUnavailable, RasaClient
from core.celery_app import celery_app
from core.db import get_sessionmaker, session_scope
from core.i18n import Catalog, normalize_language
from core.locks import exclusive
from core.settings import get_settings
from core.sqldialect import ROW_LOCK_ON_POSTGRESQL_ONLY
from gateway.outbound import KIND_ERASURE_CONFIRMATION, sendable, take_claimed
from gateway.tasks import send_claimed
from models import Channel, Contact, Language, Message, MessageDirection, MessageStatus
from models.base import utcnow
from models.enums import HouseholdStatus, TicketCategory, TicketKind, TicketSource
from models.outbox_relay import discard_pending, publish_committed
from models.tickets import Ticket, TicketEvent
from models.users import SERVICE_ACTOR_LABEL
from tickets.psea import screen as screen_for_psea

log = logging.getLogger(__name__)

CATALOG = Catalog(Path(__file__).resolve().parent / "catalogs")

NEED_CATEGORIES = {
    "request_health": TicketCategory.HEALTH,
    "request_wash": TicketCategory.WASH,
    "request_shelter_nfi": TicketCategory.SHELTER_NFI,
    "request_food": TicketCategory.FOOD,
    # Named needs outside the sectors (cash, documents, school...): a ticket too — without
    # this entry they got only the help text while Rasa was down.
    "request_other": TicketCategory.OTHER,
    "protection_concern": TicketCategory.PROTECTION,
}
# Unclassified text at least this long becomes an "other" ticket for an operator to read:
# with the bot down, a real request must not vanish because no keyword matched.
MIN_UNCLASSIFIED_CHARS = 12


def rasa_client() -> RasaClient:
    settings = get_settings()
    return RasaClient(
        base_url=settings.rasa_url,
        shared_secret=settings.bot_shared_secret.get_secret_value(),
        timeout_seconds=settings.rasa_timeout_seconds,
        api_token=settings.rasa_token.get_secret_value() if settings.rasa_token else None,
    )


@celery_app.task(
    name="conversation.forget",
    ignore_result=True,
    autoretry_for=(BotUnavailable,),
    retry_backoff=30,
    retry_jitter=True,
    max_retries=20,
)
def forget_conversation(public_id: str) -> None:
    """Erasure reaches the bot's tracker store too (retried while Rasa is down)."""
    if get_settings().bot == "rasa":
        rasa_client().forget(public_id)


@celery_app.task(name="conversation.handle_message", ignore_result=True)
def handle_message(message_id: int, contact_id: int | None = None) -> None:
    """``contact_id``: given by the gateway's hand-off, so the task goes straight to the
    contact's lock (one transaction fewer per message); looked up when absent."""
    if contact_id is None:
        with session_scope() as session:
            row = session.execute(
                select(Message.status, Message.contact_id).where(Message.id == message_id)
            ).first()
        if row is None or row.status != MessageStatus.RECEIVED:
            return  # already handled (a redelivered task) or ignored by the gateway
        contact_id = row.contact_id
    if contact_id is None:
        return
    with exclusive(f"conversation:{contact_id}"):
        handle_pending_for_contact(contact_id, up_to_message_id=message_id)


def handle_pending_for_contact(contact_id: int, *, up_to_message_id: int) -> None:
    """Handle this contact's unhandled inbound messages up to the given one, oldest first,
    one transaction each (the first one also finds them). A message no longer RECEIVED (a
    redelivered task) is skipped."""
    session = get_sessionmaker()()
    try:
        pending_ids = list(
            session.scalars(
                select(Message.id)
                .where(
                    Message.contact_id == contact_id,
                    Message.direction == MessageDirection.INBOUND,
                    Message.status == MessageStatus.RECEIVED,
                    Message.flood_limited.is_(False),
                    Message.id <= up_to_message_id,
                )
                .order_by(Message.id)
            )
        )
        for pending_id in pending_ids:
            try:
                # The contact's exclusive lock (above) serialises turns; the row lock is kept
                # on PostgreSQL, not as SQLite's whole-database lock through the Rasa call.
                message = session.get(
                    Message,
                    pending_id,
                    with_for_update=True,
                    execution_options=ROW_LOCK_ON_POSTGRESQL_ONLY,
                )
                if message is None or message.status != MessageStatus.RECEIVED:
                    session.rollback()
                    continue
                handle_one(session, message)
                message.status = MessageStatus.HANDLED
                session.commit()
            except BaseException:
                session.rollback()
                discard_pending(session)
                take_claimed(session)  # their rows went with the rollback
                raise
            publish_committed(session)
            # The replies, sent from here when their channel is healthy: no task, no reload.
            send_claimed(session)
            session.expunge_all()  # the next message starts from fresh rows
    finally:
        session.close()


def handle_one(session: Session, message: Message) -> None:
    contact = session.get(Contact, message.contact_id)
    if contact is None or contact.erased_at is not None:
        return
    text = message.body or ""
    satisfaction = _record_satisfaction(session, contact, text)
    if satisfaction is not None:
        # The answer and the thanks belong to the ticket the question was about.
        message.ticket_id = message.ticket_id or satisfaction
        _reply(
            session,
            contact,
            CATALOG.translate("satisfaction_thanks", contact.language),
            ticket_id=satisfaction,
        )
        return
    settings = get_settings()
    waited = (utcnow() - message.created_at).total_seconds()
    if settings.bot == "rasa" and waited > settings.bot_max_queue_seconds:
        log.warning("message %s waited %.0f s for the bot, using the fallback", message.id, waited)
    elif settings.bot == "rasa":
        channel = session.get(Channel, message.channel_id)
        turn_started = utcnow()
        try:
            replies = rasa_client().send(
                sender=contact.public_id,
                text=text,
                metadata={
                    "channel": channel.type.value if channel else "sms",
                    "language": contact.language.value if contact.language else None,
                    "message_id": message.id,
                },
            )
        except BotUnavailable as exc:
            log.warning("bot unavailable for message %s, using the fallback: %s", message.id, exc)
        else:
            ticket_id = _ticket_of_turn(session, contact, since=turn_started)
            if ticket_id is None:
                # A turn that changed no ticket may still answer the bot's question about one.
                from tickets.conversation import followup_ticket_id

                ticket_id = followup_ticket_id(session, contact.id, message)
            # The platform's SEA screen on every turn, whatever Rasa made of it (tickets.psea).
            psea_reply = None
            if ticket_id is None and screen_for_psea(text):
                # Rasa opened nothing (a greeting, "not understood", a question asked first):
                # the report is not left waiting on the answer, it is a PSEA case now.
                language = Language(normalize_language(contact.language))
                ticket_id = _create_psea_ticket(session, message, contact, language)
                psea_reply = ticket_id
            elif ticket_id is not None and _screen_for_psea(
                session, ticket_id, text, since=turn_started
            ):
                psea_reply = ticket_id
            if ticket_id is not None and message.ticket_id is None:
                message.ticket_id = ticket_id
            if psea_reply is not None:
                # Rasa's answer was for what it thought this was (a need, a question about the
                # place): the sender is told who handles a PSEA report instead.
                replies = [_psea_received_text(session, psea_reply, contact)]
            # The bot's actions may have erased it (/erase) or opted it out: only those
            # columns are read again (not the whole row and its encrypted number).
            session.refresh(contact, ["erased_at", "opted_out_at"])
            kind = "reply" if contact.erased_at is None else KIND_ERASURE_CONFIRMATION
            # The channel the message came in on, already loaded: no look-up per reply.
            reply_channel = channel if channel is not None and sendable(channel) else None
            for reply in replies:
                _reply(
                    session, contact, reply, ticket_id=ticket_id, kind=kind, channel=reply_channel
                )
            return
    handle_with_fallback(session, message, contact, text)


def _screen_for_psea(
    session: Session, ticket_id: int, text: str, *, since: datetime | None = None
) -> bool:
    """A message of the turn that reports sexual exploitation or abuse by an aid worker makes
    its ticket a PSEA case, whatever the model made of it: the API's safety net sees only
    the text a ticket is created with, not a follow-up answer ("he said he would put us on
    the list if…") added to a need ticket. Re-classified as an operator would
    (``tickets.workflow.change_kind``): protection, sensitive, urgent, unassigned and routed to
    the PSEA focal points only — the team that had it loses sight of it. True when the
    ticket became PSEA during this turn (re-classified here, or by intake's screen)."""
    from tickets.workflow import change_kind

    ticket = session.get(Ticket, ticket_id)
    if ticket is None or not screen_for_psea(text):
        return False
    if ticket.kind == TicketKind.PSEA:
        # Already PSEA: made so by intake's screen in this turn (Rasa filed it as something
        # else and its answer says so) — not when Rasa itself recognised it (psea_report).
        return since is not None and _created_this_turn_as_other(session, ticket, since)
    change_kind(session, ticket, TicketKind.PSEA, actor_label="psea screen")
    log.warning("ticket %s re-classified as PSEA from a follow-up message", ticket.id)
    return True


def _created_this_turn_as_other(session: Session, ticket: Ticket, since: datetime) -> bool:
    """Whether ``ticket`` was created during this turn and intake's screen, not its creator,
    made it PSEA (its "created" event says so: ``tickets.intake``)."""
    created = session.scalar(
        select(TicketEvent)
        .where(TicketEvent.ticket_id == ticket.id, TicketEvent.kind == "created")
        .limit(1)
    )
    return (
        created is not None
        and created.created_at >= since
        and bool((created.data or {}).get("psea_screen"))
    )


def _psea_received_text(session: Session, ticket_id: int, contact: Contact) -> str:
    ticket = session.get(Ticket, ticket_id)
    return CATALOG.translate(
        "fallback_psea_received",
        contact.language,
        reference=ticket.reference if ticket is not None else "",
        hours=get_settings().psea_first_contact_hours,
    )


def _create_psea_ticket(
    session: Session, message: Message, contact: Contact, language: Language
) -> int:
    from tickets.intake import create_ticket

    ticket = create_ticket(
        session,
        category=TicketCategory.PROTECTION,
        kind=TicketKind.PSEA,
        source=TicketSource.SMS,
        contact=contact,
        description=message.body,
        language=language,
        sensitive=True,
        needs_review=True,
        message_id=message.id,
        actor_label="psea screen",
    )
    log.warning("ticket %s opened as PSEA by the screen (the bot opened none)", ticket.id)
    return ticket.id


def handle_with_fallback(session: Session, message: Message, contact: Contact, text: str) -> None:
    from bot.fallback import classify

    # Marked now (the caller marks it too, and a failure rolls both back): the row's one
    # UPDATE then carries the status with the ticket link instead of two UPDATEs.
    message.status = MessageStatus.HANDLED
    result = classify(text, language_hint=contact.language.value if contact.language else None)
    language = Language(normalize_language(result.language or contact.language))
    if contact.language is None:
        contact.language = language
    intent = result.intent
    if intent in NEED_CATEGORIES or (
        intent == "out_of_scope" and len(text.strip()) >= MIN_UNCLASSIFIED_CHARS
    ):
        category = NEED_CATEGORIES.get(intent, TicketCategory.OTHER)
        psea = result.kind == TicketKind.PSEA.value
        ticket = _create_ticket(session, message, contact, category, language, result, psea=psea)
        if psea:
            # Who handles it and when, and that they may stay anonymous; nothing of what
            # they wrote is echoed (a shared phone).
            text = CATALOG.translate(
                "fallback_psea_received",
                language,
                reference=ticket.reference,
                hours=get_settings().psea_first_contact_hours,
            )
        else:
            key = (
                "fallback_protection_received"
                if category == TicketCategory.PROTECTION
                else "fallback_ticket_created"
            )
            text = CATALOG.translate(key, language, reference=ticket.reference)
        _reply(session, contact, text, ticket_id=ticket.id)
        return
    if intent == "register_household" and result.household_size and result.place_code:
        from tickets.intake import register_household

        household = register_household(
            session,
            contact=contact,
            size=result.household_size,
            place_code=result.place_code,
            origin_code=result.origin_code,
        )
        if result.household_status is not None:
            household.status = HouseholdStatus(result.household_status)
        _reply(session, contact, CATALOG.translate("fallback_household_registered", language))
        return
    if intent == "ticket_status":
        from tickets.notifications import status_reply

        _reply(session, contact, status_reply(session, contact, language))
        return
    if intent == "erase_data":
        from tickets.intake import erase_contact

        # Send, then erase: everything goes now but the number, kept (encrypted) until the
        # confirmation's send is final (tickets.erasure.finish_erasure).
        erase_contact(session, contact, actor_label="sender", confirm=True)
        _reply(
            session,
            contact,
            CATALOG.translate("fallback_erased", language),
            kind=KIND_ERASURE_CONFIRMATION,
        )
        return
    key = "fallback_thanks" if intent == "thanks" else "fallback_help"
    _reply(session, contact, CATALOG.translate(key, language))


def _create_ticket(
    session: Session,
    message: Message,
    contact: Contact,
    category: TicketCategory,
    language: Language,
    result: Any,
    *,
    psea: bool = False,
) -> Any:
    from tickets.intake import create_ticket

    ticket = create_ticket(
        session,
        category=category,
        kind=TicketKind.PSEA if psea else None,
        source=TicketSource.SMS,
        contact=contact,
        description=message.body,
        place_code=result.place_code,
        household_size=result.household_size,
        language=language,
        sensitive=category == TicketCategory.PROTECTION,
        needs_review=True,
        message_id=message.id,
        actor_label="fallback",
    )
    message.ticket_id = ticket.id
    return ticket


def _record_satisfaction(session: Session, contact: Contact, text: str) -> int | None:
    """The id of the ticket ``text`` answered the satisfaction question of, if it did."""
    from tickets.notifications import record_satisfaction

    ticket = record_satisfaction(session, contact, text)
    return None if ticket is None else ticket.id


def _ticket_of_turn(session: Session, contact: Contact, *, since: datetime) -> int | None:
    """The ticket the bot created or completed during this turn (its actions call /api/v1,
    which writes a timeline event with actor "bot"), newest first; None when it touched none.
    The turn's messages are linked to it, so they are shown exactly like the ticket (a
    protection conversation only to protection officers: ops_console.permissions)."""
    return session.scalar(
        select(TicketEvent.ticket_id)
        .join(Ticket, Ticket.id == TicketEvent.ticket_id)
        .where(
            Ticket.contact_id == contact.id,
            TicketEvent.actor_label == SERVICE_ACTOR_LABEL,
            TicketEvent.created_at >= since,
        )
        .order_by(TicketEvent.id.desc())
        .limit(1)
    )


def _reply(
    session: Session,
    contact: Contact,
    body: str,
    *,
    ticket_id: int | None = None,
    kind: str = "reply",
    channel: Channel | None = None,
) -> None:
    from gateway.outbound import queue_sms

    queue_sms(
        session,
        contact=contact,
        body=body,
        ticket_id=ticket_id,
        kind=kind,
        channel=channel,
        send_now=True,
    )
