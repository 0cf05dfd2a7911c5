"""Broadcasts: one SMS written in French, English and Bambara, sent to a selection of
contacts through the gateway's one outbound path (``queue_sms``: GSM-7, delivery status,
retries, the channel's breaker).

Contract::

    parse_phone_list(text) -> PhoneList(numbers, invalid)
    preview(session, selection, texts) -> Preview      (nothing written)
    prepare(session, selection, texts, ...) -> Broadcast  (recipients written, flushes only)
    start(session, broadcast, scheduled_at=None)        (sending now, or at scheduled_at)
    broadcast_tick()                                    (beat: next batch of each broadcast)

Never sent to: opted-out, erased or recently flood-limited contacts (recorded as *skipped*
with the reason), phone-simulator contacts. A selection built on protection or PSEA cases is
refused (``SelectionRefused``); a selection by ticket only ever counts ordinary tickets, so a
sensitive case never puts a person on a list.

Pacing: every ``DEME_BROADCAST_TICK_SECONDS`` beat's tick hands each sending broadcast at
most its channel's rate (``config.broadcast_per_second``, else ``max_per_second``) times the
tick to ``queue_sms``, less what is still waiting to be sent on that channel, so the outbound
queue never holds more than a few seconds of a broadcast and replies to people keep their
place. The tick runs on the periodic queue (served after intake).

Idempotent per recipient: a batch claims its rows (``queued`` → ``sent``, compare-and-set),
writes their messages and links them in one transaction; a worker killed mid-batch rolls all
of it back and the next tick takes the same rows again; once committed, a row is never taken
again. The (broadcast, contact) unique key means nobody is on a broadcast twice.
"""

from __future__ import annotations

import csv
import io
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, insert, or_, select, update
from sqlalchemy.orm import Session

from core.celery_app import celery_app
from core.crypto import lookup_hash
from core.db import get_sessionmaker
from core.locks import single_run
from core.phones import InvalidPhoneNumber, normalize_phone
from core.settings import get_settings
from gateway.limits import max_per_second
from gateway.outbound import SENDABLE_TYPES, BodyTooLong, NoChannel, prepare_body, queue_sms
from models.base import utcnow
from models.broadcasts import Broadcast, BroadcastRecipient, BroadcastStatus, RecipientStatus
from models.channels import Channel
from models.contacts import Contact, Household, HouseholdContact
from models.enums import (
    Language,
    MessageDirection,
    MessageStatus,
    TicketCategory,
    TicketKind,
    TicketStatus,
)
from models.messages import Message
from models.outbox_relay import publish_committed
from models.places import Place
from models.tickets import Ticket
from tickets.contacts import get_or_create_contact
from tickets.gazetteer import Gazetteer

log = logging.getLogger(__name__)

LANGUAGES = (Language.FRENCH, Language.ENGLISH, Language.BAMBARA)
KIND_BROADCAST = "broadcast"
KIND_BROADCAST_TEST = "broadcast_test"
# A contact flood-limited this recently is left out (they are texting in bursts already).
FLOOD_QUIET = timedelta(hours=24)
MAX_LIST_NUMBERS = 5000
MAX_TEXT_LENGTH = 918  # 6 GSM-7 parts; the channel's max_segments is checked as well
SKIP_REASONS = ("erased", "opted_out", "flood_limited")


class SelectionRefused(ValueError):
    """The selection or the texts cannot be used; the message says why. ``template`` and
    ``variables`` let the console show it in its own language (its catalogs hold them)."""

    def __init__(self, template: str, **variables: object) -> None:
        super().__init__(template.format(**variables))
        self.template = template
        self.variables = variables


@dataclass(frozen=True)
class PhoneList:
    numbers: list[str]
    invalid: list[str]  # "line 3: 'abc' is not a phone number"
    bad: list[tuple[int, str]] = field(default_factory=list)  # (line, text) for the console


@dataclass(frozen=True)
class Selection:
    place_code: str | None = None
    languages: tuple[Language, ...] = ()
    ticket_kind: TicketKind | None = None
    ticket_category: TicketCategory | None = None
    ticket_status: TicketStatus | None = None
    # An uploaded list: replaces the other criteria.
    phones: PhoneList | None = None

    def criteria(self) -> dict[str, Any]:
        """What the broadcast row keeps (never the numbers of a list)."""
        if self.phones is not None:
            return {"list": len(self.phones.numbers)}
        found: dict[str, Any] = {}
        if self.place_code:
            found["place"] = self.place_code
        if self.languages:
            found["languages"] = [language.value for language in self.languages]
        for key in ("ticket_kind", "ticket_category", "ticket_status"):
            value = getattr(self, key)
            if value is not None:
                found[key] = value.value
        return found


@dataclass
class ChannelCost:
    channel_id: int
    name: str
    recipients: int = 0
    parts: int = 0
    cost: float = 0.0


@dataclass
class Preview:
    recipients: int
    skipped: dict[str, int]
    by_language: dict[str, int]
    parts_total: int
    channels: list[ChannelCost]
    currency: str
    # Per language: (encoding, parts of one message) of the text that language gets.
    texts: dict[str, tuple[str, int]]
    invalid_lines: list[str] = field(default_factory=list)
    new_numbers: int = 0

    @property
    def cost_total(self) -> float:
        return round(sum(c.cost for c in self.channels), 2)


@dataclass(frozen=True)
class _Row:
    contact_id: int | None
    language: Language | None
    reason: str | None
    channel_id: int | None


# --- input ---------------------------------------------------------------------------------


def parse_phone_list(text: str) -> PhoneList:
    """Numbers from an uploaded CSV (the first cell of each line), normalised with
    ``core.phones``; a header line (no digit) is ignored, every other unreadable line is
    reported by its number. Duplicates count once."""
    numbers: dict[str, None] = {}
    invalid: list[str] = []
    bad: list[tuple[int, str]] = []
    reader = csv.reader(io.StringIO(text.replace(";", ",")))
    for line_no, cells in enumerate(reader, start=1):
        cell = (cells[0] if cells else "").strip()
        if not cell:
            continue
        if line_no == 1 and not any(ch.isdigit() for ch in cell):
            continue  # a header ("phone", "numéro")
        try:
            numbers.setdefault(normalize_phone(cell), None)
        except InvalidPhoneNumber:
            invalid.append(f"line {line_no}: {cell[:40]!r} is not a phone number")
            bad.append((line_no, cell[:40]))
    if len(numbers) > MAX_LIST_NUMBERS:
        raise SelectionRefused(
            "the list has {count} numbers; at most {limit} per broadcast",
            count=len(numbers),
            limit=MAX_LIST_NUMBERS,
        )
    return PhoneList(list(numbers), invalid, bad)


def check_selection(selection: Selection) -> None:
    if selection.ticket_kind == TicketKind.PSEA or (
        selection.ticket_category == TicketCategory.PROTECTION
    ):
        raise SelectionRefused(
            "a broadcast cannot be built on protection or PSEA cases: the people who "
            "reported them must never be reached by a list"
        )
    if selection.phones is not None:
        if not selection.phones.numbers:
            raise SelectionRefused("the uploaded list has no valid phone number")
        return
    if not selection.criteria():
        raise SelectionRefused(
            "choose at least one criterion: a place, a language, a ticket kind, category "
            "or status, or upload a list of numbers"
        )
    if selection.place_code and Gazetteer.default().get(selection.place_code) is None:
        raise SelectionRefused("unknown place code {code}", code=selection.place_code)


def clean_texts(texts: dict[str, str | None]) -> dict[Language, str]:
    found = {}
    for language in LANGUAGES:
        value = (texts.get(language.value) or "").strip()
        if len(value) > MAX_TEXT_LENGTH:
            raise SelectionRefused(
                "the {language} text has {count} characters; at most {limit}",
                language=language.value,
                count=len(value),
                limit=MAX_TEXT_LENGTH,
            )
        if value:
            found[language] = value
    if not found:
        raise SelectionRefused("write the message in at least one language (fr, en or bm)")
    return found


def text_for(texts: dict[Language, str], language: Language | None) -> tuple[Language, str]:
    """The person's language when that text is written, else French, English, Bambara."""
    order = ([language] if language else []) + list(LANGUAGES)
    for candidate in order:
        if candidate in texts:
            return candidate, texts[candidate]
    raise SelectionRefused("no text")


# --- selection -------------------------------------------------------------------------------


def _place_ids(session: Session, code: str) -> list[int]:
    codes = [code] + [record.code for record in Gazetteer.default().descendants(code)]
    return list(session.scalars(select(Place.id).where(Place.code.in_(codes))))


def _ordinary_ticket() -> ColumnElement[bool]:
    """Tickets a list may be built on: never a sensitive, protection or PSEA case."""
    return and_(
        Ticket.sensitive.is_(False),
        Ticket.kind != TicketKind.PSEA,
        Ticket.category != TicketCategory.PROTECTION,
    )


def _criteria_clause(session: Session, selection: Selection) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    if selection.place_code:
        places = _place_ids(session, selection.place_code)
        live = Household.merged_into_id.is_(None)
        clauses.append(
            or_(
                exists().where(
                    Household.contact_id == Contact.id,
                    Household.current_place_id.in_(places),
                    live,
                ),
                exists().where(
                    HouseholdContact.contact_id == Contact.id,
                    Household.id == HouseholdContact.household_id,
                    Household.current_place_id.in_(places),
                    live,
                ),
                exists().where(
                    Ticket.contact_id == Contact.id, Ticket.place_id.in_(places), _ordinary_ticket()
                ),
            )
        )
    if selection.languages:
        clauses.append(Contact.language.in_(selection.languages))
    ticket: list[ColumnElement[bool]] = []
    if selection.ticket_kind is not None:
        ticket.append(Ticket.kind == selection.ticket_kind)
    if selection.ticket_category is not None:
        ticket.append(Ticket.category == selection.ticket_category)
    if selection.ticket_status is not None:
        ticket.append(Ticket.status == selection.ticket_status)
    if ticket:
        clauses.append(exists().where(Ticket.contact_id == Contact.id, _ordinary_ticket(), *ticket))
    return clauses


def _default_channel(session: Session) -> Channel:
    channel = session.scalar(
        select(Channel)
        .where(Channel.active.is_(True), Channel.type.in_(SENDABLE_TYPES[:3]))
        .order_by(Channel.id)
        .limit(1)
    )
    if channel is None:
        raise SelectionRefused("no active SMS channel: add one on the admin page first")
    return channel


def _rows(session: Session, selection: Selection) -> tuple[list[_Row], int]:
    """Every selected contact with why it is skipped (or None) and its channel; and how many
    numbers of a list are not contacts yet (they become contacts when it is prepared)."""
    since = utcnow() - FLOOD_QUIET
    flooded = Contact.id.in_(
        select(Message.contact_id).where(
            Message.flood_limited.is_(True),
            Message.direction == MessageDirection.INBOUND,
            Message.created_at >= since,
        )
    )
    query = select(
        Contact.id,
        Contact.language,
        Contact.erased_at.is_not(None) | Contact.phone_hash.is_(None),
        Contact.opted_out_at.is_not(None),
        flooded,
    ).where(Contact.is_test.is_(False))
    new_numbers = 0
    if selection.phones is not None:
        hashes = {lookup_hash(number): number for number in selection.phones.numbers}
        query = query.where(Contact.phone_hash.in_(list(hashes)))
        known = set(
            session.scalars(select(Contact.phone_hash).where(Contact.phone_hash.in_(list(hashes))))
        )
        new_numbers = len(hashes) - len(known)
    else:
        query = query.where(*_criteria_clause(session, selection))
    found = session.execute(query.order_by(Contact.id)).tuples().all()
    # The channel each person last wrote on (their operator reaches them there), else the
    # first active SMS channel: one grouped query, not one per person.
    sendable = select(Channel.id).where(Channel.active.is_(True), Channel.type.in_(SENDABLE_TYPES))
    last = select(func.max(Message.id)).where(
        Message.direction == MessageDirection.INBOUND, Message.channel_id.in_(sendable)
    )
    if selection.phones is not None or len(found) < 1000:
        last = last.where(Message.contact_id.in_([row[0] for row in found]))
    last_channel = dict(
        session.execute(
            select(Message.contact_id, Message.channel_id).where(
                Message.id.in_(last.group_by(Message.contact_id))
            )
        )
        .tuples()
        .all()
    )
    default = _default_channel(session).id
    rows = []
    for contact_id, language, erased, opted_out, flood in found:
        reason = (
            "erased" if erased else "opted_out" if opted_out else "flood_limited" if flood else None
        )
        rows.append(_Row(contact_id, language, reason, last_channel.get(contact_id, default)))
    return rows, new_numbers


class _Measure:
    """prepare_body per (language, channel), measured once."""

    def __init__(self, session: Session, texts: dict[Language, str]) -> None:
        self.session = session
        self.texts = texts
        self.channels: dict[int, Channel] = {}
        self._memo: dict[tuple[Language, int], tuple[Language, str, int, str]] = {}

    def channel(self, channel_id: int) -> Channel:
        if channel_id not in self.channels:
            channel = self.session.get(Channel, channel_id)
            assert channel is not None
            self.channels[channel_id] = channel
        return self.channels[channel_id]

    def __call__(
        self, language: Language | None, channel_id: int
    ) -> tuple[Language, str, int, str]:
        key_language, text = text_for(self.texts, language)
        key = (key_language, channel_id)
        if key not in self._memo:
            channel = self.channel(channel_id)
            try:
                _body, info, _ = prepare_body(text, channel)
            except BodyTooLong as exc:
                raise SelectionRefused(
                    "the {language} text needs {parts} SMS parts; channel {channel} allows "
                    "at most {limit}",
                    language=key_language.value,
                    parts=exc.segments,
                    channel=channel.name,
                    limit=exc.limit,
                ) from None
            self._memo[key] = (key_language, text, info.segments, info.encoding.value)
        return self._memo[key]


def _cost_per_part(channel: Channel) -> float:
    try:
        return float(
            (channel.config or {}).get("cost_per_part", get_settings().broadcast_cost_per_part)
        )
    except (TypeError, ValueError):
        return get_settings().broadcast_cost_per_part


def preview(session: Session, selection: Selection, texts: dict[Language, str]) -> Preview:
    """Counts, parts and cost of a broadcast, without writing anything."""
    check_selection(selection)
    rows, new_numbers = _rows(session, selection)
    measure = _Measure(session, texts)
    default = _default_channel(session).id
    skipped: Counter[str] = Counter()
    by_language: Counter[str] = Counter()
    costs: dict[int, ChannelCost] = {}
    parts_total = 0
    sendable = [row for row in rows if row.reason is None]
    for row in rows:
        if row.reason is not None:
            skipped[row.reason] += 1
    # New numbers of a list have no language yet: they get French (else the first text).
    for language, channel_id in [(r.language, r.channel_id or default) for r in sendable] + [
        (None, default)
    ] * new_numbers:
        used, _text, parts, _encoding = measure(language, channel_id)
        by_language[used.value] += 1
        cost = costs.get(channel_id)
        if cost is None:
            channel = measure.channel(channel_id)
            cost = costs[channel_id] = ChannelCost(channel_id, channel.name)
        cost.recipients += 1
        cost.parts += parts
        parts_total += parts
    for cost in costs.values():
        cost.cost = round(cost.parts * _cost_per_part(measure.channel(cost.channel_id)), 2)
    per_text = {}
    for language in texts:
        _used, _t, parts, encoding = measure(language, default)
        per_text[language.value] = (encoding, parts)
    return Preview(
        recipients=len(sendable) + new_numbers,
        skipped={reason: skipped.get(reason, 0) for reason in SKIP_REASONS},
        by_language=dict(by_language),
        parts_total=parts_total,
        channels=sorted(costs.values(), key=lambda c: c.channel_id),
        currency=get_settings().broadcast_currency,
        texts=per_text,
        invalid_lines=list(selection.phones.invalid) if selection.phones else [],
        new_numbers=new_numbers,
    )


def prepare(
    session: Session,
    selection: Selection,
    texts: dict[Language, str],
    *,
    name: str,
    created_by_id: int | None,
) -> Broadcast:
    """A draft broadcast with one row per selected person (skipped ones with their reason),
    its per-person text and parts (flushes; the caller commits)."""
    check_selection(selection)
    if selection.phones is not None:
        for number in selection.phones.numbers:  # a list's new numbers become contacts
            get_or_create_contact(session, number)
        session.flush()
    rows, _new = _rows(session, selection)
    measure = _Measure(session, texts)
    default = _default_channel(session).id
    broadcast = Broadcast(
        name=name.strip()[:120] or "broadcast",
        text_fr=texts.get(Language.FRENCH),
        text_en=texts.get(Language.ENGLISH),
        text_bm=texts.get(Language.BAMBARA),
        criteria=selection.criteria(),
        status=BroadcastStatus.DRAFT,
        created_by_id=created_by_id,
        created_at=utcnow(),
        recipients_count=0,
        skipped_count=0,
        parts_total=0,
        sent_count=0,
        failed_count=0,
    )
    session.add(broadcast)
    session.flush()
    values = []
    parts_total = 0
    skipped = 0
    for row in rows:
        channel_id = row.channel_id or default
        if row.reason is not None:
            skipped += 1
            values.append(
                {
                    "broadcast_id": broadcast.id,
                    "contact_id": row.contact_id,
                    "channel_id": channel_id,
                    "language": row.language,
                    "text": None,
                    "parts": 0,
                    "status": RecipientStatus.SKIPPED,
                    "reason": row.reason,
                }
            )
            continue
        used, text, parts, _encoding = measure(row.language, channel_id)
        parts_total += parts
        values.append(
            {
                "broadcast_id": broadcast.id,
                "contact_id": row.contact_id,
                "channel_id": channel_id,
                "language": used,
                "text": text,
                "parts": parts,
                "status": RecipientStatus.QUEUED,
                "reason": None,
            }
        )
    _insert_recipients(session, values)
    broadcast.recipients_count = len(values) - skipped
    broadcast.skipped_count = skipped
    broadcast.parts_total = parts_total
    session.flush()
    return broadcast


_RECIPIENT_COLUMNS = (
    "broadcast_id",
    "contact_id",
    "channel_id",
    "language",
    "text",
    "parts",
    "status",
    "reason",
)


def _insert_recipients(session: Session, values: list[dict[str, Any]]) -> None:
    """One row per recipient, fast: PostgreSQL's COPY (psycopg sends an executemany one row
    per statement: 4x slower at 100,000), SQLite's executemany (in-process, already fast)."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        raw = connection.connection.driver_connection
        columns = ", ".join(_RECIPIENT_COLUMNS)
        statement = f"COPY broadcast_recipients ({columns}) FROM STDIN"
        with raw.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[union-attr]
            for row in values:
                copy.write_row(tuple(getattr(row[c], "value", row[c]) for c in _RECIPIENT_COLUMNS))
        return
    for start_at in range(0, len(values), 5000):
        session.execute(insert(BroadcastRecipient), values[start_at : start_at + 5000])


class NotAllowedNow(SelectionRefused):
    """The broadcast's status does not allow this action."""


def start(session: Session, broadcast: Broadcast, scheduled_at: datetime | None = None) -> None:
    """Send now (the next tick starts it), or at ``scheduled_at``."""
    if broadcast.status != BroadcastStatus.DRAFT:
        raise NotAllowedNow(
            "this broadcast is {status}: only a draft can be sent", status=broadcast.status.value
        )
    now = utcnow()
    if scheduled_at is not None and scheduled_at > now:
        broadcast.status = BroadcastStatus.SCHEDULED
        broadcast.scheduled_at = scheduled_at
    else:
        broadcast.status = BroadcastStatus.SENDING
        broadcast.started_at = now


def cancel(session: Session, broadcast: Broadcast) -> int:
    """Stops sending: recipients not yet handed to the outbound path stay unsent (skipped,
    reason cancelled). Returns how many."""
    if broadcast.status not in (
        BroadcastStatus.DRAFT,
        BroadcastStatus.SCHEDULED,
        BroadcastStatus.SENDING,
    ):
        raise NotAllowedNow("this broadcast is already {status}", status=broadcast.status.value)
    broadcast.status = BroadcastStatus.CANCELLED
    broadcast.finished_at = utcnow()
    result = session.execute(
        update(BroadcastRecipient)
        .where(
            BroadcastRecipient.broadcast_id == broadcast.id,
            BroadcastRecipient.status == RecipientStatus.QUEUED,
        )
        .values(status=RecipientStatus.SKIPPED, reason="cancelled")
    )
    return int(getattr(result, "rowcount", 0) or 0)


def send_test(
    session: Session, broadcast: Broadcast, phone: str, language: Language
) -> Message | None:
    """The broadcast's text in ``language`` to the operator's own phone (flushes). None when
    that number opted out."""
    contact = get_or_create_contact(session, phone)
    texts = broadcast_texts(broadcast)
    _used, text = text_for(texts, language)
    return queue_sms(session, contact=contact, body=text, kind=KIND_BROADCAST_TEST)


def broadcast_texts(broadcast: Broadcast) -> dict[Language, str]:
    found = {
        Language.FRENCH: broadcast.text_fr,
        Language.ENGLISH: broadcast.text_en,
        Language.BAMBARA: broadcast.text_bm,
    }
    return {language: text for language, text in found.items() if text}


# --- progress and replies --------------------------------------------------------------------


def recipient_counts(session: Session, broadcast_id: int) -> dict[str, int]:
    rows = session.execute(
        select(BroadcastRecipient.status, func.count())
        .where(BroadcastRecipient.broadcast_id == broadcast_id)
        .group_by(BroadcastRecipient.status)
    ).all()
    counts = {status.value: 0 for status in RecipientStatus}
    counts.update({RecipientStatus(status).value: int(n) for status, n in rows})
    return counts


def delivery_counts(session: Session, broadcast_id: int) -> dict[str, int]:
    """The messages' own delivery status (pending, sent, delivered, failed, unknown...)."""
    rows = session.execute(
        select(Message.status, func.count())
        .join(BroadcastRecipient, BroadcastRecipient.message_id == Message.id)
        .where(BroadcastRecipient.broadcast_id == broadcast_id)
        .group_by(Message.status)
    ).all()
    return {MessageStatus(status).value: int(n) for status, n in rows}


def replies(
    session: Session, broadcast_id: int, *clauses: ColumnElement[bool], limit: int = 50
) -> tuple[int, list[Message]]:
    """The replies tied to a broadcast: inbound messages from a recipient after their
    broadcast SMS and within ``DEME_BROADCAST_REPLY_DAYS`` of it (the window's end checked in
    Python: portable date arithmetic). Returns how many, and the latest ``limit`` of them that
    ``clauses`` (the viewer's rule for messages) let through."""
    days = timedelta(days=get_settings().broadcast_reply_days)
    candidates = session.execute(
        select(Message.id, Message.created_at, BroadcastRecipient.sent_at)
        .join(
            BroadcastRecipient,
            and_(
                BroadcastRecipient.broadcast_id == broadcast_id,
                BroadcastRecipient.contact_id == Message.contact_id,
                BroadcastRecipient.sent_at.is_not(None),
                BroadcastRecipient.sent_at <= Message.created_at,
            ),
        )
        .where(Message.direction == MessageDirection.INBOUND)
    ).all()
    ids = [mid for mid, created, sent_at in candidates if created <= sent_at + days]
    if not ids or limit <= 0:
        return len(ids), []
    shown = list(
        session.scalars(
            select(Message)
            .where(Message.id.in_(ids), *clauses)
            .order_by(Message.id.desc())
            .limit(limit)
        )
    )
    return len(ids), shown


# --- sending -------------------------------------------------------------------------------


def _rate(channel: Channel) -> float:
    config = channel.config or {}
    raw = config.get("broadcast_per_second")
    if raw is not None:
        return max_per_second({"max_per_second": raw})
    return max_per_second(config)


def _in_flight(session: Session, broadcast_id: int, channel_id: int) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(BroadcastRecipient)
            .join(Message, Message.id == BroadcastRecipient.message_id)
            .where(
                BroadcastRecipient.broadcast_id == broadcast_id,
                BroadcastRecipient.channel_id == channel_id,
                Message.status.in_((MessageStatus.PENDING, MessageStatus.QUEUED)),
            )
        )
        or 0
    )


def send_batch(broadcast_id: int, channel_id: int, limit: int) -> int:
    """Hand up to ``limit`` queued recipients of one channel to ``queue_sms``, in one
    transaction (see the module docstring). Returns how many rows it settled."""
    with get_sessionmaker()() as session:
        broadcast = session.get(Broadcast, broadcast_id)
        channel = session.get(Channel, channel_id)
        if broadcast is None or broadcast.status != BroadcastStatus.SENDING or channel is None:
            return 0
        picked = list(
            session.scalars(
                select(BroadcastRecipient.id)
                .where(
                    BroadcastRecipient.broadcast_id == broadcast_id,
                    BroadcastRecipient.channel_id == channel_id,
                    BroadcastRecipient.status == RecipientStatus.QUEUED,
                )
                .order_by(BroadcastRecipient.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        if not picked:
            return 0
        claimed = set(
            session.scalars(
                update(BroadcastRecipient)
                .where(
                    BroadcastRecipient.id.in_(picked),
                    BroadcastRecipient.status == RecipientStatus.QUEUED,
                )
                .values(status=RecipientStatus.SENT, sent_at=utcnow())
                .returning(BroadcastRecipient.id),
                execution_options={"synchronize_session": False},
            )
        )
        recipients = list(
            session.scalars(select(BroadcastRecipient).where(BroadcastRecipient.id.in_(claimed)))
        )
        contacts = {
            c.id: c
            for c in session.scalars(
                select(Contact).where(Contact.id.in_([r.contact_id for r in recipients]))
            )
        }
        sent = failed = 0
        for recipient in recipients:
            contact = contacts.get(recipient.contact_id or 0)
            message = None
            if contact is not None and contact.is_test:
                contact = None
            try:
                if contact is not None:
                    message = queue_sms(
                        session,
                        contact=contact,
                        body=recipient.text or "",
                        channel=channel,
                        kind=KIND_BROADCAST,
                    )
            except (BodyTooLong, NoChannel) as exc:
                recipient.status = RecipientStatus.FAILED
                recipient.reason = type(exc).__name__.lower()[:40]
                failed += 1
                continue
            if message is None:
                # Opted out or erased since the broadcast was prepared.
                recipient.status = RecipientStatus.SKIPPED
                recipient.reason = "opted_out" if contact is not None else "erased"
                continue
            recipient.message_id = message.id
            sent += 1
        broadcast.sent_count = (broadcast.sent_count or 0) + sent
        broadcast.failed_count = (broadcast.failed_count or 0) + failed
        session.commit()
        publish_committed(session)
        return len(recipients)


def _finish_if_done(session: Session, broadcast: Broadcast) -> bool:
    left = session.scalar(
        select(BroadcastRecipient.id)
        .where(
            BroadcastRecipient.broadcast_id == broadcast.id,
            BroadcastRecipient.status == RecipientStatus.QUEUED,
        )
        .limit(1)
    )
    if left is None:
        broadcast.status = BroadcastStatus.DONE
        broadcast.finished_at = utcnow()
        return True
    return False


@single_run("gateway.broadcast_tick", skipped=0)
def broadcast_tick(*, now: datetime | None = None) -> int:
    """Start the scheduled broadcasts that are due; give every sending one its next batch per
    channel. Returns how many recipients were settled."""
    moment = now or utcnow()
    tick = get_settings().broadcast_tick_seconds
    work: list[tuple[int, int, int]] = []
    with get_sessionmaker()() as session:
        session.execute(
            update(Broadcast)
            .where(Broadcast.status == BroadcastStatus.SCHEDULED, Broadcast.scheduled_at <= moment)
            .values(status=BroadcastStatus.SENDING, started_at=moment)
        )
        for broadcast in session.scalars(
            select(Broadcast).where(Broadcast.status == BroadcastStatus.SENDING)
        ):
            if _finish_if_done(session, broadcast):
                log.info("broadcast %d done", broadcast.id)
                continue
            channel_ids = session.scalars(
                select(BroadcastRecipient.channel_id)
                .where(
                    BroadcastRecipient.broadcast_id == broadcast.id,
                    BroadcastRecipient.status == RecipientStatus.QUEUED,
                )
                .distinct()
            )
            for channel_id in [c for c in channel_ids if c is not None]:
                channel = session.get(Channel, channel_id)
                if channel is None or not channel.active:
                    continue
                budget = max(1, int(_rate(channel) * tick))
                budget -= _in_flight(session, broadcast.id, channel_id)
                if budget > 0:
                    work.append((broadcast.id, channel_id, budget))
        session.commit()
    settled = 0
    for broadcast_id, channel_id, budget in work:
        settled += send_batch(broadcast_id, channel_id, budget)
    if settled:
        log.info("broadcast tick: %d recipients handed to the outbound path", settled)
    return settled


@celery_app.task(name="gateway.broadcast_tick", ignore_result=True)
def broadcast_tick_task() -> int:
    return broadcast_tick()


__all__ = [
    "KIND_BROADCAST",
    "NotAllowedNow",
    "PhoneList",
    "Preview",
    "Selection",
    "SelectionRefused",
    "broadcast_tick",
    "cancel",
    "check_selection",
    "clean_texts",
    "delivery_counts",
    "parse_phone_list",
    "prepare",
    "preview",
    "recipient_counts",
    "replies",
    "send_batch",
    "send_test",
    "start",
]
