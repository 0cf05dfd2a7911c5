"""Sends of unknown outcome (UNKNOWN: the provider answered 5xx or timed out after we sent):
resolved with the provider where its API allows, otherwise counted, shown and resendable.

- ``reconcile_unknown()`` (beat, every minute): each UNKNOWN Twilio message is looked up in
  Twilio's Messages list (``gateway.channels.twilio.find_sent``) at most every
  ``RECHECK_EVERY`` for ``RECONCILE_FOR``; found → its provider id and status are recorded
  (status callbacks then follow it as usual). The row is claimed for one look-up by a
  compare-and-set UPDATE on ``reconciled_at``, so two sweeps never look it up together.
  Africa's Talking and generic aggregators have no look-up: their unknowns stay listed.
- ``unknown_stats()``: the open unknowns and the share of the window's sends that ended
  unknown — the ``/metrics`` gauges; ``check_unknown_share()`` logs a warning (on
  ``deme.alerts``) when the share passes ``DEME_UNKNOWN_SEND_ALERT_SHARE``.
- ``resend_unknown()``: an operator's resend, once per message (compare-and-set on
  ``resent_at``): a new outbound message with the same body; the caller audits it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.orm import Session

from core.db import get_sessionmaker
from core.settings import get_settings
from gateway.breaker import held_channels
from gateway.channels import load_channel
from gateway.status import RANK, advance_status
from models.base import utcnow
from models.channels import Channel
from models.contacts import Contact
from models.enums import ChannelType, MessageDirection, MessageStatus
from models.messages import Message

log = logging.getLogger(__name__)
alert_log = logging.getLogger("deme.alerts")

RECHECK_EVERY = timedelta(minutes=5)
RECONCILE_FOR = timedelta(days=1)
# Statuses counted as "the send ended" for the share of unknowns.
_ENDED = [s for s in MessageStatus if s in RANK and RANK[s] >= RANK[MessageStatus.UNKNOWN]]


def unresolved() -> list[ColumnElement[bool]]:
    """SQL conditions of an open unknown send (not resolved, not resent)."""
    return [
        Message.direction == MessageDirection.OUTBOUND,
        Message.status == MessageStatus.UNKNOWN,
        Message.provider_id.is_(None),
        Message.resent_at.is_(None),
    ]


def _claim_for_lookup(limit: int) -> list[int]:
    now = utcnow()
    twilio_channels = select(Channel.id).where(Channel.type == ChannelType.TWILIO)
    due = [
        *unresolved(),
        Message.channel_id.in_(twilio_channels),
        Message.created_at >= now - RECONCILE_FOR,
        (Message.reconciled_at.is_(None)) | (Message.reconciled_at < now - RECHECK_EVERY),
    ]
    with get_sessionmaker()() as session:
        # A channel whose breaker holds its sends is not asked either: the look-up would
        # only time out against the same failing API.
        held, probing = held_channels(session, now=now)
        if held | probing:
            due.append(Message.channel_id.not_in(held | probing))
        candidates = select(Message.id).where(*due).order_by(Message.id).limit(limit)
        claimed = sorted(
            session.scalars(
                update(Message)
                .where(Message.id.in_(candidates.scalar_subquery()), *due)
                .values(reconciled_at=now)
                .returning(Message.id),
                execution_options={"synchronize_session": False},
            )
        )
        session.commit()
    return claimed


def reconcile_message(message_id: int) -> bool:
    """Ask the provider about one unknown send; True when it was found and recorded."""
    from gateway.channels import twilio

    with get_sessionmaker()() as session:
        message = session.get(Message, message_id)
        if message is None or message.status != MessageStatus.UNKNOWN:
            return False
        contact = None if message.contact_id is None else session.get(Contact, message.contact_id)
        channel = load_channel(session, message.channel_id)
        to = None if contact is None else contact.phone
        body = message.body or ""
        since = message.send_started_at or message.created_at
        known = set(
            session.scalars(
                select(Message.provider_id).where(
                    Message.channel_id == message.channel_id,
                    Message.direction == MessageDirection.OUTBOUND,
                    Message.provider_id.is_not(None),
                    Message.created_at >= since - timedelta(minutes=5),
                )
            )
        )
    if channel is None or channel.type != ChannelType.TWILIO or not to:
        return False
    try:
        found = twilio.find_sent(
            channel, to=to, body=body, since=since, known={k for k in known if k}
        )
    except Exception as exc:  # provider unreachable: asked again at the next recheck
        log.warning("reconcile message=%s: look-up failed (%s)", message_id, type(exc).__name__)
        return False
    if found is None:
        return False
    status = found.status
    if status is None or RANK.get(status, 0) <= RANK[MessageStatus.UNKNOWN]:
        status = MessageStatus.SENT  # Twilio holds it (queued/accepted/sending): it was sent
    with get_sessionmaker()() as session:
        moved = advance_status(
            session,
            message_id=message_id,
            status=status,
            provider_id_to_set=found.provider_id,
            clear_error=True,
        )
        session.commit()
    log.info("reconcile message=%s: found at the provider, now %s", message_id, status.value)
    return moved


def reconcile_unknown(*, limit: int = 50) -> tuple[int, int]:
    """Look up the unknown sends that are due; returns (looked up, resolved)."""
    claimed = _claim_for_lookup(limit)
    resolved = sum(reconcile_message(message_id) for message_id in claimed)
    check_unknown_share()
    return len(claimed), resolved


@dataclass(frozen=True, slots=True)
class UnknownStats:
    open_unknown: int  # unresolved, not resent (all time)
    window_ended: int  # sends that ended (sent, unknown, failed...) in the window
    window_unknown: int  # of which unknown
    share: float
    alerting: bool


def unknown_stats(session: Session, *, now: datetime | None = None) -> UnknownStats:
    settings = get_settings()
    moment = now or utcnow()
    since = moment - timedelta(minutes=settings.unknown_send_window_minutes)
    open_unknown = session.scalar(select(func.count(Message.id)).where(*unresolved())) or 0
    rows = session.execute(
        select(Message.status, func.count(Message.id))
        .where(
            Message.direction == MessageDirection.OUTBOUND,
            Message.send_started_at >= since,
            Message.status.in_(_ENDED),
        )
        .group_by(Message.status)
    ).all()
    unknown = sum(int(count) for status, count in rows if status == MessageStatus.UNKNOWN)
    ended = sum(int(count) for _, count in rows)
    share = unknown / ended if ended else 0.0
    alerting = unknown >= settings.unknown_send_alert_min and share > (
        settings.unknown_send_alert_share
    )
    return UnknownStats(int(open_unknown), ended, unknown, share, alerting)


def check_unknown_share() -> UnknownStats:
    """Warn (``deme.alerts``, counts only) when too many recent sends ended unknown."""
    settings = get_settings()
    with get_sessionmaker()() as session:
        stats = unknown_stats(session)
    if stats.alerting:
        alert_log.warning(
            "outbound sends of unknown outcome: %d of %d (%.0f%%) in the last %d min, "
            "threshold %.0f%%; %d unresolved — see the console's 'delivery unknown' page",
            stats.window_unknown,
            stats.window_ended,
            stats.share * 100,
            settings.unknown_send_window_minutes,
            settings.unknown_send_alert_share * 100,
            stats.open_unknown,
        )
    return stats


class NotResendable(LookupError):
    """The message is not an open unknown send (resolved, resent already, or no such id)."""


def resend_unknown(session: Session, message_id: int) -> Message:
    """Mark an open unknown send resent (once: compare-and-set) and queue the same body again
    as a new message (flushes; the caller audits, commits and publishes). Raises
    NotResendable, or ``gateway.outbound``'s errors when the contact can no longer be
    messaged."""
    from gateway.outbound import queue_sms

    now = utcnow()
    claimed = session.execute(
        update(Message)
        .where(Message.id == message_id, *unresolved())
        .values(resent_at=now)
        .returning(Message.id),
        execution_options={"synchronize_session": False},
    ).scalar()
    if claimed is None:
        raise NotResendable(f"message {message_id} is not an unresolved unknown send")
    original = session.get(Message, message_id)
    assert original is not None
    session.refresh(original)
    contact = None if original.contact_id is None else session.get(Contact, original.contact_id)
    if contact is None:
        raise NotResendable(f"message {message_id} has no recipient any more")
    channel = session.get(Channel, original.channel_id)
    new = queue_sms(
        session,
        contact=contact,
        body=original.body or "",
        channel=channel,
        ticket_id=original.ticket_id,
        kind="resend",
    )
    if new is None:
        raise NotResendable(f"message {message_id}: the recipient opted out or was erased")
    return new
