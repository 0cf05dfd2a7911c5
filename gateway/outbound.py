"""Queueing outgoing SMS: measure, transliterate, refuse what is too long, write the row,
enqueue ``gateway.send_outbound`` after commit.

Contract (docs/architecture.md)::

    queue_sms(session, *, contact, body, channel=None, ticket_id=None, kind="reply")
        -> Message | None
    measure(body) -> SegmentInfo(encoding, segments, length)
    to_gsm7(body) -> str

Too long is refused, not split: ``queue_sms`` raises ``BodyTooLong`` (a ValueError naming the
channel's limit) when the body needs more than the channel's ``max_segments`` (default 6).
Twilio and Africa's Talking already send a multi-part body as one concatenated SMS that
phones show as one message, so "splitting" would only mean several separate texts arriving
in any order; a caller that writes a longer reply has a bug to see, not to hide.

``send_now=True`` (the conversation task's replies): on a healthy channel — the breaker closed
with no failure on record, a rate slot free at once, a real provider, not a phone-simulator
contact — the row is written already claimed (``SENDING``, ``send_started_at`` set: the same
marker ``gateway.send_outbound`` commits before its provider call), and the caller sends it
right after its commit with ``gateway.tasks.send_claimed`` instead of publishing a task: one
Celery hop, a reload and a claim transaction fewer per reply. Anything else takes the task
path. A worker that dies between that commit and the provider's answer leaves the row
``SENDING``; the sweep records it UNKNOWN (never resent), as for a task that died mid-send.

Opted-out or erased contacts get nothing (None), except ``kind="opt_out_confirmation"``:
the single message confirming the opt-out itself, and ``kind="erasure_confirmation"``: the
message confirming an erasure, sent before the number itself is removed
(``tickets.erasure.finish_erasure``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.gsm7 import SegmentInfo, measure, to_gsm7
from models.base import utcnow
from models.channels import Channel
from models.contacts import Contact
from models.enums import ChannelType, MessageDirection, MessageStatus
from models.messages import Message
from models.outbox_relay import enqueue_after_commit, publish_after_commit

if TYPE_CHECKING:
    from gateway.breaker import Gate
    from gateway.channels import ChannelInfo

__all__ = [
    "BodyTooLong",
    "SegmentInfo",
    "measure",
    "prepare_body",
    "queue_sms",
    "sendable",
    "take_claimed",
    "to_gsm7",
]

SEND_OUTBOUND = "gateway.send_outbound"
DEFAULT_MAX_SEGMENTS = 6
KIND_OPT_OUT_CONFIRMATION = "opt_out_confirmation"
KIND_ERASURE_CONFIRMATION = "erasure_confirmation"
# The kinds that may reach an opted-out or erased contact: a swept message of these must be
# re-sent as what it was, and only its outbox row remembers that (gateway.tasks._queued_kind).
KINDS_KEPT_IN_OUTBOX = frozenset({KIND_OPT_OUT_CONFIRMATION, KIND_ERASURE_CONFIRMATION})
SENDABLE_TYPES = (
    ChannelType.TWILIO,
    ChannelType.AFRICASTALKING,
    ChannelType.HTTP,
    ChannelType.SIMULATOR,
)


class BodyTooLong(ValueError):
    def __init__(self, segments: int, limit: int, channel_name: str) -> None:
        super().__init__(
            f"SMS body needs {segments} segments; channel {channel_name!r} allows at most "
            f"{limit} (config max_segments)"
        )
        self.segments = segments
        self.limit = limit


# session.info key: replies written claimed (``send_now``), to send after the commit.
_CLAIMED_KEY = "deme_claimed_sends"
# Types whose replies may go out inline (a simulator channel has no provider to call).
INLINE_TYPES = (ChannelType.TWILIO, ChannelType.AFRICASTALKING, ChannelType.HTTP)


@dataclass(frozen=True, slots=True)
class ClaimedSend:
    """A reply committed as ``SENDING`` by its writer, sent after the commit."""

    message_id: int
    channel: ChannelInfo
    to: str
    body: str
    gate: Gate


def take_claimed(session: Session) -> list[ClaimedSend]:
    """The claimed replies ``session`` wrote (and forgets them): after a commit, to send; after
    a rollback, to drop (their rows are gone with it)."""
    claimed: list[ClaimedSend] = session.info.pop(_CLAIMED_KEY, [])
    return claimed


def _inline_gate(session: Session, contact: Contact, channel: Channel) -> Gate | None:
    """The breaker's gate when this reply may be sent inline (see the module docstring)."""
    if channel.type not in INLINE_TYPES or not channel.active or contact.is_test:
        return None
    from gateway import breaker
    from gateway.limits import acquire_send_slot, max_per_second

    gate = breaker.check(session, channel.id)
    # Only a channel with no failure on record: a provider that just failed (or a probe)
    # stays on the outbound worker, so a sick provider never holds up a conversation turn.
    if not gate.allowed or gate.probe or gate.failures:
        return None
    if not acquire_send_slot(channel.id, max_per_second(channel.config or {}), max_wait=0.0):
        return None
    return gate


class NoChannel(LookupError):
    """No active channel can carry an SMS to this contact."""


def prepare_body(body: str, channel: Channel) -> tuple[str, SegmentInfo, bool]:
    """The body as it will be sent, its cost, and whether it was transliterated.

    Raises BodyTooLong when it exceeds the channel's ``max_segments``.
    """
    config = channel.config or {}
    text = body
    if config.get("transliterate", True):
        text = to_gsm7(body)
    info = measure(text)
    limit = int(config.get("max_segments", DEFAULT_MAX_SEGMENTS))
    if info.segments > limit:
        raise BodyTooLong(info.segments, limit, channel.name)
    return text, info, text != body


def sendable(channel: Channel) -> bool:
    """Whether a reply may go out on this channel (active, of a type that sends SMS)."""
    return bool(channel.active) and channel.type in SENDABLE_TYPES


def pick_channel(session: Session, contact: Contact) -> Channel:
    """The channel the contact last wrote on (their operator reaches them there), else the
    first active SMS channel."""
    last = session.scalar(
        select(Channel)
        .join(Message, Message.channel_id == Channel.id)
        .where(
            Message.contact_id == contact.id,
            Message.direction == MessageDirection.INBOUND,
            Channel.active.is_(True),
            Channel.type.in_(SENDABLE_TYPES),
        )
        .order_by(Message.id.desc())
        .limit(1)
    )
    if last is not None:
        return last
    first = session.scalar(
        select(Channel)
        .where(Channel.active.is_(True), Channel.type.in_(SENDABLE_TYPES[:3]))
        .order_by(Channel.id)
        .limit(1)
    )
    if first is None:
        raise NoChannel("no active SMS channel")
    return first


def queue_sms(
    session: Session,
    *,
    contact: Contact,
    body: str,
    channel: Channel | None = None,
    ticket_id: int | None = None,
    kind: str = "reply",
    send_now: bool = False,
) -> Message | None:
    """Write a PENDING outbound message and enqueue its sending after commit (flushes only);
    with ``send_now``, maybe claimed for the caller to send (see the module docstring).

    Returns None when the contact opted out or was erased (nothing is written). Raises
    BodyTooLong (ValueError) for a body over the channel's segment limit, NoChannel when
    there is no channel at all.
    """
    if not contact.phone:
        return None
    if contact.erased_at is not None and kind != KIND_ERASURE_CONFIRMATION:
        return None
    if contact.opted_out_at is not None and kind != KIND_OPT_OUT_CONFIRMATION:
        return None
    if channel is None:
        channel = pick_channel(session, contact)
    text, info, transliterated = prepare_body(body, channel)
    gate = _inline_gate(session, contact, channel) if send_now and kind == "reply" else None
    now = utcnow()
    message = Message(
        channel_id=channel.id,
        contact_id=contact.id,
        ticket_id=ticket_id,
        direction=MessageDirection.OUTBOUND,
        body=text,
        status=MessageStatus.PENDING if gate is None else MessageStatus.SENDING,
        send_started_at=None if gate is None else now,
        segments=info.segments,
        encoding=info.encoding,
        transliterated=transliterated,
        sanitized=False,
        flood_limited=False,
        send_attempts=0 if gate is None else 1,
        created_at=now,
        status_updated_at=now,
    )
    session.add(message)
    session.flush()
    if gate is not None:
        from gateway.channels import channel_info

        claimed: list[ClaimedSend] = session.info.setdefault(_CLAIMED_KEY, [])
        claimed.append(ClaimedSend(message.id, channel_info(channel), contact.phone, text, gate))
    elif kind in KINDS_KEPT_IN_OUTBOX:
        enqueue_after_commit(session, SEND_OUTBOUND, message.id, kind)
    else:
        # The PENDING, unclaimed row is its own outbox: gateway.sweep_outbound re-publishes
        # it if this task is lost (models.outbox_relay.publish_after_commit).
        publish_after_commit(session, SEND_OUTBOUND, message.id, kind)
    return message
