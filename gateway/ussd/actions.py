"""The database work of the menu: who is calling, and what a completed path records.

Navigation hops never come here. A walk touches the database at most three times: the contact
look-up on the first hop of a session, saving the language the first time it is chosen, and
the final write. Everything a path records goes through ``tickets.intake`` — the same code the
SMS bot uses — so triage, routing, SLA and notifications are identical whatever the channel.

The final write is on the caller's critical path, so it only *records*
(``tickets.intake.record_ticket``: the ticket, its reference and its "created" event, in a
handful of statements); routing, assignment, SLA, surges, team alerts and the SMS receipt run
in the worker (``tickets.process_intake``), pushed to it once the caller has the END screen
(``intake.publish_processing``; ``process_pending`` catches a push that never happened).

These functions are synchronous and take a fresh SQLAlchemy session (``gateway.dbwork``
runs them on the event loop through the asyncio driver on PostgreSQL, in a thread on SQLite);
those that write own the transaction: they commit.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, defer

from gateway.ussd.engine import Action, Flow, MenuEngine, MenuState
from gateway.ussd.store import CallerKey
from models.base import utcnow
from models.contacts import Contact
from models.enums import Language, TicketCategory, TicketKind, TicketSource
from models.ussd import UssdSession

log = logging.getLogger(__name__)

ACTOR_LABEL = "ussd"
# Open requests loaded for the status screen: more than 160 characters can list (a line is
# about 25), so the screen is always full when the caller has that many.
STATUS_LINES = 8
# Actions that record something about the caller, and so need a Contact row to exist.
_CREATES_CONTACT = frozenset({Action.REGISTER, Action.HELP, Action.PROTECTION, Action.OPT_OUT})


_CONTACT_LOOKUP = select(Contact.id, Contact.language).where(
    Contact.phone_hash == bindparam("digest")
)


@dataclass(frozen=True, slots=True)
class ContactInfo:
    contact_id: int
    language: Language | None


def lookup_contact(session: Session, phone_hash: str) -> ContactInfo | None:
    """The first hop's only query: id and language of the caller, if we know them.

    A Core statement on the session's connection: this runs on every new session and the
    ORM's unit-of-work machinery would triple its CPU cost for nothing."""
    row = session.connection().execute(_CONTACT_LOOKUP, {"digest": phone_hash}).first()
    return None if row is None else ContactInfo(row[0], row[1])


def ensure_contact(session: Session, phone_e164: str, language: Language | None) -> ContactInfo:
    """The caller's contact, created if new, with ``language`` remembered when given. Commits.

    Safe to run concurrently with a final write for the same caller: get_or_create_contact
    resolves the race on the unique phone hash."""
    from tickets.contacts import get_or_create_contact, set_contact_language

    contact = get_or_create_contact(session, phone_e164, language=language)
    if language is not None and contact.language != language:
        set_contact_language(contact, language)
    session.commit()
    return ContactInfo(contact.id, contact.language)


def _caller(session: Session, phone_e164: str, state: MenuState, *, create: bool) -> Contact | None:
    # The phone number is not needed to record anything: left unloaded, it is not decrypted.
    contact = (
        session.get(Contact, state.contact_id, options=[defer(Contact.phone)])
        if state.contact_id
        else None
    )
    if contact is not None and contact.erased_at is not None:
        contact = None  # erased since this walk began: never write to an erased record
    if contact is None:
        from tickets.contacts import find_contact_by_phone, get_or_create_contact

        if create:
            contact = get_or_create_contact(session, phone_e164, language=state.language)
        else:
            contact = find_contact_by_phone(session, phone_e164)
    if contact is not None and contact.language is None and state.language is not None:
        contact.language = state.language
    return contact


After = Callable[[], object]


def _nothing() -> None:
    return None


def complete(
    session: Session,
    engine: MenuEngine,
    action: Action,
    key: CallerKey,
    phone_e164: str,
    state: MenuState,
    *,
    session_row_expected: bool = True,
) -> tuple[str, After]:
    """Perform ``action`` for a finished path; return the END screen and what to run once the
    caller has it: pushing the recorded ticket's process step to the worker (team alerts and
    the SMS receipt leave from there) and any outbox rows. The caller never waits for the
    broker, and a crash before the push only delays processing (``process_pending``).
    ``session`` is fresh and is committed here.

    Idempotent per aggregator session: the session's ``ussd_sessions`` row is written in the
    same transaction, marked completed, with the answer; a retried final hop (even after the
    Redis state was lost) finds it and replays the answer instead of recording twice. Two
    racing retries collide on the row's unique (channel, session) key and the loser replays.

    ``session_row_expected``: whether the session's row may exist before the walk completes
    (the database state store writes it on every hop). With the Redis store it exists only for
    a retry of a walk already completed — which the service replays before coming here (it
    checks ``completed_answer`` when it holds no state) or, for two retries racing, the unique
    key turns into the replay below — so the look-up is skipped: one round trip less.
    """
    try:
        return _complete(
            session,
            engine,
            action,
            key,
            phone_e164,
            state,
            session_row_expected=session_row_expected,
        )
    except IntegrityError:
        session.rollback()
        replay = completed_answer(session, key)
        if replay is None:
            raise
        return replay, _nothing


def completed_answer(session: Session, key: CallerKey) -> str | None:
    """The END answer already given to this aggregator session, if it completed."""
    row = session.scalar(key.session_row())
    if row is None or not row.completed:
        return None
    answer = (row.state or {}).get("out")
    return str(answer) if answer else None


def _complete(
    session: Session,
    engine: MenuEngine,
    action: Action,
    key: CallerKey,
    phone_e164: str,
    state: MenuState,
    *,
    session_row_expected: bool,
) -> tuple[str, After]:
    language = state.language
    row = None
    if session_row_expected:
        row = session.scalar(key.session_row().with_for_update())
    if row is not None and row.completed and (row.state or {}).get("out"):
        return str(row.state["out"]), _nothing

    contact = _caller(session, phone_e164, state, create=action in _CREATES_CONTACT)
    if action is Action.ERASE:
        answer = _erase(session, engine, contact, language)
        session.commit()
        return answer, _after_commit(session, None)

    answer, recorded_ticket_id = _perform(session, engine, action, contact, state)
    if row is None:
        row = key.new_session_row()
        session.add(row)
    row.contact_id = contact.id if contact is not None else None
    row.language = language
    row.hops = state.hops
    # Ids and the answer only: the walk's choices live on the ticket or household.
    row.state = {"action": action.value, "out": answer}
    row.completed = True
    row.ended_at = utcnow()
    session.commit()
    return answer, _after_commit(session, recorded_ticket_id)


def _after_commit(session: Session, recorded_ticket_id: int | None) -> After:
    """What to run once the caller has the END screen: push the recorded ticket's process step
    to the worker, and publish any outbox rows the action wrote (erasure, opt-out)."""
    from models.outbox_relay import has_pending, publish_committed
    from tickets.intake import publish_processing

    jobs: list[After] = []
    if has_pending(session):
        # The closed session keeps what publish_committed needs (its info and loaded rows).
        jobs.append(functools.partial(publish_committed, session))
    if recorded_ticket_id is not None:
        jobs.append(functools.partial(publish_processing, recorded_ticket_id))
    if not jobs:
        return _nothing
    if len(jobs) == 1:
        return jobs[0]
    return lambda: [job() for job in jobs]


def _perform(
    session: Session,
    engine: MenuEngine,
    action: Action,
    contact: Contact | None,
    state: MenuState,
) -> tuple[str, int | None]:
    """The END screen, and the id of the ticket recorded (its process step is still to run)."""
    import tickets.intake as intake

    language, data = state.language, state.data
    if action is Action.STATUS:
        # Newest first: the screen shows as many as fit, never more than STATUS_LINES.
        found = (
            intake.open_tickets_for(session, contact, limit=STATUS_LINES)
            if contact is not None
            else []
        )
        status = engine.end_status(
            language,
            [
                (
                    t.reference,
                    # A sensitive request is never named on a screen someone may look over.
                    "cat.protection" if t.sensitive else f"cat.{t.category.value}",
                    t.status.value,
                )
                for t in found
            ],
        )
        return status, None
    if action is Action.OPT_IN:
        if contact is not None:
            from tickets.contacts import opt_in

            opt_in(contact)
        return engine.end(language, "end.opt_in"), None
    assert contact is not None  # _CREATES_CONTACT guarantees it for the remaining actions
    if action is Action.OPT_OUT:
        from tickets.contacts import opt_out

        opt_out(contact)
        return engine.end(language, "end.opt_out"), None
    if action is Action.REGISTER:
        size, place = int(data["size"]), str(data["place"])
        intake.register_household(session, contact=contact, size=size, place_code=place)
        household_end = engine.end(
            language, "end.household", size=size, place=engine.places.label(place)
        )
        return household_end, None
    if action is Action.PROTECTION:
        callback_ok = bool(data.get("callback"))
        when = str(data["when"]) if callback_ok and data.get("when") else None
        # Recorded now, processed by the worker (as every path here): the team's alert, which
        # carries the reference only, leaves from there; a protection sender gets no SMS.
        psea = bool(data.get("psea"))
        ticket = intake.record_ticket(
            session,
            category=TicketCategory.PROTECTION,
            kind=TicketKind.PSEA if psea else None,
            source=TicketSource.USSD,
            contact=contact,
            language=language,
            sensitive=True,
            callback_ok=callback_ok,
            callback_time=when,
            actor_label=ACTOR_LABEL,
        )
        if psea:
            from core.settings import get_settings

            hours = get_settings().psea_first_contact_hours
            return engine.end(language, "end.psea", ref=ticket.reference, hours=hours), ticket.id
        if when is not None:
            from gateway.ussd.i18n import translate

            callback_end = engine.end(
                language,
                "end.protection.callback",
                ref=ticket.reference,
                when=translate(f"when.{when}", language),
            )
            return callback_end, ticket.id
        return engine.end(language, "end.protection.nocall", ref=ticket.reference), ticket.id
    # Action.HELP
    if data.get("flow") != Flow.HELP.value:
        raise ValueError(f"help action on a {data.get('flow')!r} walk")
    ticket = intake.record_ticket(
        session,
        category=TicketCategory(str(data["cat"])),
        source=TicketSource.USSD,
        contact=contact,
        place_code=str(data["place"]),
        household_size=int(data["size"]),
        language=language,
        actor_label=ACTOR_LABEL,
    )
    return engine.end(language, "end.ticket", ref=ticket.reference), ticket.id


def _erase(
    session: Session, engine: MenuEngine, contact: Contact | None, language: Language | None
) -> str:
    if contact is not None:
        import tickets.intake as intake

        # The walk history goes too; no ussd_sessions row is written for this session.
        session.execute(delete(UssdSession).where(UssdSession.contact_id == contact.id))
        counts: dict[str, Any] = intake.erase_contact(session, contact, actor_label=ACTOR_LABEL)
        log.info("ussd erase contact_id=%s counts=%s", contact.id, counts)
    return engine.end(language, "end.erased")
