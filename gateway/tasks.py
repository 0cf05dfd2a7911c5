"""Celery tasks of the gateway (explicit names; each receives ids and reloads rows).

``gateway.process_inbound(message_id)``
    opt-out/opt-in keywords → flood control → hand-off to ``conversation.handle_message``.
    Runs under a row lock. Keyword and flood decisions move the message to IGNORED (final);
    a hand-off leaves it RECEIVED for the conversation task, which marks it HANDLED. A
    repeated run (redelivery, relay) is harmless: opt-out/in only confirm a *change*, the
    flood counter counts message ids, and the conversation task skips handled messages.
``gateway.send_outbound(message_id, kind="reply")``
    one provider call at most per message: ``send_started_at`` is committed *before* the
    call; a run that finds it set without a provider id (the worker died mid-send, acks_late
    redelivered the task) records UNKNOWN instead of sending again.
    A database or broker error retries the task with backoff (``core.tasks.retry_transient``);
    after the provider call, the retry only records the provider's answer.
    A send that must wait — the provider said "not now" (429, refused connection), the
    channel is throttled, or its circuit breaker (``gateway.breaker``) is open — is not
    retried in the broker: the message goes QUEUED with ``next_attempt_at`` and the task
    ends, freeing its worker slot; ``gateway.send_due`` publishes it again when due.
``gateway.send_due``
    beat, every few seconds: publish the QUEUED sends that are due, except on channels whose
    breaker is open (one send — the probe — once it is half-open).
``gateway.relay_inbound``, ``gateway.replay_spool``, ``gateway.sweep_outbound``
    beat: re-publish inbound messages the broker never got, replay the disk spool, and
    re-publish outbound messages whose task was lost (PENDING and unclaimed for 30 s) or
    settle those whose worker vanished mid-send.
``gateway.reconcile_unknown``
    beat: Twilio look-ups of sends of unknown outcome (``gateway.delivery``).
``gateway.request_callback(call_id)``
    open the "call back" ticket for a missed call.
"""

from __future__ import annotations

import logging
import random
import time
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, not_, or_, select, update
from sqlalchemy.orm import Session

from core.celery_app import celery_app
from core.db import TRANSIENT_ERRORS, get_sessionmaker
from core.locks import single_run
from core.settings import get_settings
from core.tasks import MAX_TRANSIENT_RETRIES, retry_transient, transient_backoff_seconds
from gateway import breaker
from gateway.channels import ChannelInfo, load_channel
from gateway.flow_sms import handle_flow_sms
from gateway.i18n import translate
from gateway.keywords import KeywordAction, match_keyword
from gateway.limits import acquire_send_slot, is_flooding, max_per_second
from gateway.outbound import (
    KIND_ERASURE_CONFIRMATION,
    KIND_OPT_OUT_CONFIRMATION,
    SEND_OUTBOUND,
    queue_sms,
)
from gateway.sending import Delivery, FailureKind, SendFailure
from gateway.status import RANK, advance_status
from models.base import utcnow
from models.channels import Channel
from models.contacts import Contact
from models.enums import ChannelType, MessageDirection, MessageStatus
from models.messages import Message
from models.outbox_relay import (
    publish,
    publish_after_commit,
    publish_committed,
)
from tickets.contacts import opt_in, opt_out
from tickets.flows import enumerator_for, flow_keyword, is_flow_count

log = logging.getLogger(__name__)

HANDLE_MESSAGE = "conversation.handle_message"
MAX_SEND_RETRIES = 8
STUCK_SENDING_AFTER = timedelta(minutes=10)
# The kind of a message re-published by the sweep (the message row does not store it):
# resolved from its outbox row when it matters (an opted-out contact).
SWEPT_KIND = "swept"
# A PENDING message with no claim this old has lost its task: the sweep publishes it again.
STUCK_PENDING_AFTER = timedelta(seconds=30)
# QUEUED without a next attempt time (rows from before the due-sweep): lost past this.
STUCK_QUEUED_AFTER = timedelta(minutes=6)
# A due send published by the sweep whose task never ran is published again after this.
DUE_LEASE = timedelta(seconds=60)


# --- inbound ----------------------------------------------------------------------------


def _confirm(
    session: Session, contact: Contact, channel_id: int, key: str, language: str, kind: str
) -> None:
    channel = session.get(Channel, channel_id)
    body = translate(key, contact.language or language)
    queue_sms(session, contact=contact, body=body, channel=channel, kind=kind)


def handle_inbound(session: Session, message_id: int) -> str:
    """The decision for one inbound message; flushes, the caller commits. Returns what
    happened (for logs and tests)."""
    message = session.scalar(
        select(Message)
        .where(Message.id == message_id, Message.direction == MessageDirection.INBOUND)
        .with_for_update()
    )
    if message is None:
        return "missing"
    if message.status != MessageStatus.RECEIVED:
        return "already-processed"
    contact = None if message.contact_id is None else session.get(Contact, message.contact_id)
    now = utcnow()
    message.status_updated_at = now
    if contact is not None:
        contact.last_inbound_at = max(
            contact.last_inbound_at or message.created_at, message.created_at
        )

    match = match_keyword(message.body)
    if match is not None and contact is not None:
        if match.action == KeywordAction.OPT_OUT:
            message.status = MessageStatus.IGNORED
            if opt_out(contact):
                _confirm(
                    session,
                    contact,
                    message.channel_id,
                    "opt_out.confirmation",
                    match.language,
                    KIND_OPT_OUT_CONFIRMATION,
                )
                return "opted-out"
            return "already-opted-out"
        if opt_in(contact):
            message.status = MessageStatus.IGNORED
            _confirm(
                session,
                contact,
                message.channel_id,
                "opt_in.confirmation",
                match.language,
                "opt_in_confirmation",
            )
            return "opted-in"
        # "START" from someone who never opted out is just a message: the bot answers it.

    # A flow-monitoring count ("FLOW Sogoniko Gao Bamako 12 conflit D"): an enumerator's
    # phone is answered whatever its pace (a day's sheets arrive together); a count from any
    # other phone is refused, after flood control, and never reaches the bot.
    flow_word = flow_keyword(message.body) if contact is not None else None
    if flow_word is not None and contact is not None and enumerator_for(session, contact):
        return handle_flow_sms(session, message, contact, flow_word)

    if contact is not None and is_flooding(
        session, contact_id=contact.id, message_id=message.id, at=message.created_at.timestamp()
    ):
        message.flood_limited = True
        message.status = MessageStatus.IGNORED
        return "flood-limited"

    # Refused only when it is a count in the FLOW format: a person whose message merely
    # starts with the word ("Flux de deplaces vers Gao, nous avons besoin d'eau") is heard
    # by the bot like anyone else.
    if flow_word is not None and contact is not None and is_flow_count(session, message.body):
        return handle_flow_sms(session, message, contact, flow_word)

    # The message stays RECEIVED: conversation.handle_message moves it to HANDLED once the
    # bot has answered (it skips anything no longer RECEIVED, which is how it respects
    # opt-out keywords and flood control decided here). RECEIVED is also its outbox: a lost
    # hand-off is re-published by gateway.relay_inbound, so no outbox row is written.
    if contact is not None:
        publish_after_commit(session, HANDLE_MESSAGE, message.id, contact.id)
    else:
        publish_after_commit(session, HANDLE_MESSAGE, message.id)
    return "handed-off"


@celery_app.task(name="gateway.process_inbound", ignore_result=True, acks_late=True)
def process_inbound(message_id: int) -> str:
    with get_sessionmaker()() as session:
        outcome = handle_inbound(session, message_id)
        session.commit()
        publish_committed(session)
    log.info("inbound message=%s outcome=%s", message_id, outcome)
    return outcome


# --- outbound ---------------------------------------------------------------------------


def _sender(channel: ChannelInfo) -> Any:
    if channel.type == ChannelType.TWILIO:
        from gateway.channels import twilio

        return twilio.send
    if channel.type == ChannelType.AFRICASTALKING:
        from gateway.channels import africastalking

        return africastalking.send
    if channel.type == ChannelType.HTTP:
        from gateway.channels import http_generic

        return http_generic.send
    return None


def _status_callback(channel: ChannelInfo) -> str | None:
    base = get_settings().public_url
    if channel.type == ChannelType.TWILIO:
        return f"{base}/webhooks/twilio/status"
    if channel.type == ChannelType.HTTP:
        return f"{base}/webhooks/http/{channel.id}/status"
    return None


def _finish(
    message_id: int,
    status: MessageStatus,
    *,
    error_code: str | None = None,
    error_message: str | None = None,
    provider_id: str | None = None,
    opt_out_contact: bool = False,
) -> None:
    with get_sessionmaker()() as session:
        advance_status(
            session,
            message_id=message_id,
            status=status,
            error_code=error_code,
            error_message=error_message,
            provider_id_to_set=provider_id,
            # Sent after retries: the earlier attempt's error no longer describes it.
            clear_error=error_code is None and RANK[status] >= RANK[MessageStatus.SENT],
        )
        if opt_out_contact:
            contact = session.scalar(
                select(Contact)
                .join(Message, Message.contact_id == Contact.id)
                .where(Message.id == message_id)
            )
            if contact is not None:
                opt_out(contact)
        session.commit()


def _release_claim(
    message_id: int, error_code: str, error_message: str, next_attempt_at: datetime
) -> None:
    """The provider certainly did not take the message: sendable again at
    ``next_attempt_at`` (the due-sweep publishes it then)."""
    with get_sessionmaker()() as session:
        session.execute(
            update(Message)
            .where(Message.id == message_id, Message.status == MessageStatus.SENDING)
            .values(
                status=MessageStatus.QUEUED,
                send_started_at=None,
                next_attempt_at=next_attempt_at,
                error_code=error_code[:40],
                error_message=error_message[:500],
                status_updated_at=utcnow(),
            )
        )
        session.commit()


def _defer(
    message_id: int, at: datetime, error_code: str | None = None, error_message: str | None = None
) -> None:
    """Not attempted now (throttle, open breaker): QUEUED until ``at``, in the database."""
    values: dict[str, Any] = {
        "status": MessageStatus.QUEUED,
        "next_attempt_at": at,
        "status_updated_at": utcnow(),
    }
    if error_code is not None:
        values.update(error_code=error_code, error_message=error_message)
    with get_sessionmaker()() as session:
        session.execute(
            update(Message)
            .where(
                Message.id == message_id,
                Message.status.in_([MessageStatus.PENDING, MessageStatus.QUEUED]),
                Message.send_started_at.is_(None),
            )
            .values(**values)
        )
        session.commit()


def _claim(message_id: int) -> int:
    """Commit the "sending started" marker; returns this attempt's number, 0 when another
    run already has it."""
    now = utcnow()
    with get_sessionmaker()() as session:
        attempt = session.scalar(
            update(Message)
            .where(
                Message.id == message_id,
                Message.status.in_([MessageStatus.PENDING, MessageStatus.QUEUED]),
                Message.send_started_at.is_(None),
            )
            .values(
                status=MessageStatus.SENDING,
                send_started_at=now,
                send_attempts=Message.send_attempts + 1,
                next_attempt_at=None,
                status_updated_at=now,
            )
            .returning(Message.send_attempts),
            execution_options={"synchronize_session": False},
        )
        session.commit()
        return int(attempt or 0)


def backoff_seconds(retries: int) -> float:
    """Exponential backoff with full jitter, capped at five minutes."""
    return random.uniform(0.5, min(300.0, 2.0 * (2**retries)))


@celery_app.task(
    bind=True,
    name="gateway.send_outbound",
    ignore_result=True,
    acks_late=True,
    max_retries=None,
)
def send_outbound(
    self: Any, message_id: int, kind: str = "reply", outcome: dict[str, Any] | None = None
) -> str:
    """Send one message (see the module docstring). A database or broker error retries the
    task with backoff; when it happens *after* the provider call, the retry carries the
    provider's answer (``outcome``) and only records it — it never calls the provider again.
    """
    result = _send_or_record(self, message_id, kind, outcome)
    if kind == KIND_ERASURE_CONFIRMATION and not result.startswith("deferred"):
        # Send, then erase: the send is final (sent, failed or unknown), the kept number goes.
        _finish_erasure_after_send(message_id)
    return result


def _finish_erasure_after_send(message_id: int) -> None:
    from tickets.erasure import finish_erasure

    with get_sessionmaker()() as session:
        message = session.get(Message, message_id)
        contact = None if message is None else session.get(Contact, message.contact_id or 0)
        if contact is not None and finish_erasure(session, contact):
            session.commit()


def _send_or_record(self: Any, message_id: int, kind: str, outcome: dict[str, Any] | None) -> str:
    if outcome is not None:
        try:
            _finish(message_id, **_outcome_args(outcome))
        except TRANSIENT_ERRORS as exc:
            raise retry_transient(self, exc) from exc
        return "recorded"
    try:
        return _send_outbound(self, message_id, kind)
    except _Recorded as pending:
        try:
            _finish(message_id, **_outcome_args(pending.outcome))
        except TRANSIENT_ERRORS as exc:
            if int(self.request.retries or 0) >= MAX_TRANSIENT_RETRIES:
                raise
            try:
                retry = self.retry(
                    args=[message_id, kind],
                    kwargs={"outcome": pending.outcome},
                    countdown=transient_backoff_seconds(int(self.request.retries or 0)),
                    exc=exc,
                    throw=False,
                )
            except TRANSIENT_ERRORS:
                raise exc from None
            raise retry from exc
        return pending.result
    except TRANSIENT_ERRORS as exc:
        raise retry_transient(self, exc) from exc


class _Recorded(Exception):
    """The provider answered; what to record (``outcome``) and what the task returns."""

    def __init__(self, outcome: dict[str, Any], result: str) -> None:
        super().__init__(result)
        self.outcome = outcome
        self.result = result


def _outcome_args(outcome: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": MessageStatus(outcome["status"]),
        "error_code": outcome.get("error_code"),
        "error_message": outcome.get("error_message"),
        "provider_id": outcome.get("provider_id"),
        "opt_out_contact": bool(outcome.get("opt_out_contact")),
    }


def _after_call(
    status: MessageStatus,
    result: str,
    *,
    error_code: str | None = None,
    error_message: str | None = None,
    provider_id: str | None = None,
    opt_out_contact: bool = False,
) -> _Recorded:
    return _Recorded(
        {
            "status": status.value,
            "error_code": error_code,
            "error_message": error_message,
            "provider_id": provider_id,
            "opt_out_contact": opt_out_contact,
        },
        result,
    )


def _queued_kind(session: Session, message: Message) -> str:
    """The kind ``queue_sms`` gave a message the sweep re-published (its outbox row, written
    in the same transaction): only the opt-out confirmation may reach an opted-out contact."""
    from models.outbox import OutboxTask

    rows = session.scalars(
        select(OutboxTask.args).where(
            OutboxTask.task_name == SEND_OUTBOUND,
            OutboxTask.created_at >= message.created_at - timedelta(minutes=1),
            OutboxTask.created_at <= message.created_at + timedelta(minutes=1),
        )
    )
    for args in rows:
        if len(args or []) >= 2 and args[0] == message.id:
            return str(args[1])
    return "reply"


def _send_outbound(self: Any, message_id: int, kind: str) -> str:
    with get_sessionmaker()() as session:
        message = session.get(Message, message_id)
        if message is None or message.direction != MessageDirection.OUTBOUND:
            return "missing"
        if (
            message.send_started_at is not None
            and message.provider_id is None
            and (message.status == MessageStatus.SENDING)
        ):
            # Redelivered after the worker died mid-send: it may have gone out. Never resend.
            session.commit()
            _finish(
                message_id,
                MessageStatus.UNKNOWN,
                error_code="interrupted",
                error_message="worker stopped during the provider call; not resent",
            )
            return "unknown-interrupted"
        if message.status not in (MessageStatus.PENDING, MessageStatus.QUEUED):
            return "already-" + message.status.value
        contact = None if message.contact_id is None else session.get(Contact, message.contact_id)
        channel = load_channel(session, message.channel_id)
        body = message.body or ""
        to = None if contact is None else contact.phone
        opted_out = contact is not None and contact.opted_out_at is not None
        erased = contact is not None and contact.erased_at is not None
        if (opted_out or erased) and kind == SWEPT_KIND:
            kind = _queued_kind(session, message)
        # A phone-simulator contact: whatever channel was picked, nothing reaches a provider.
        simulated = contact is not None and contact.is_test
        gate = breaker.check(session, channel.id) if channel is not None else breaker.CLOSED
    if contact is None or not to or (erased and kind != KIND_ERASURE_CONFIRMATION):
        _finish(message_id, MessageStatus.FAILED, error_code="no_recipient")
        return "failed-no-recipient"
    if opted_out and kind != KIND_OPT_OUT_CONFIRMATION:
        _finish(
            message_id,
            MessageStatus.FAILED,
            error_code="opted_out",
            error_message="contact opted out before sending",
        )
        return "failed-opted-out"
    if channel is None:
        _finish(message_id, MessageStatus.FAILED, error_code="channel", error_message="no channel")
        return "failed-no-channel"

    if channel.type == ChannelType.SIMULATOR or simulated:
        if _claim(message_id):
            _finish(message_id, MessageStatus.SENT, provider_id=f"sim-{message_id}")
        return "simulated"
    sender = _sender(channel)
    if sender is None:
        _finish(
            message_id,
            MessageStatus.FAILED,
            error_code="channel",
            error_message=f"channel type {channel.type} cannot send SMS",
        )
        return "failed-channel-type"

    if not gate.allowed:
        # The provider is failing: not even tried; the message waits in the database and
        # the due-sweep publishes it once the breaker lets sends through again.
        _defer(
            message_id,
            utcnow(),
            "breaker_open",
            "provider failing: waiting for the channel's circuit breaker",
        )
        return "deferred-breaker"
    if not acquire_send_slot(channel.id, max_per_second(channel.config)):
        # Channel saturated: come back shortly, without holding a worker or the broker.
        _defer(message_id, utcnow() + timedelta(seconds=1.0 + random.uniform(0, 2.0)))
        return "deferred-throttle"
    attempt = _claim(message_id)
    if not attempt:
        return "claimed-elsewhere"
    return _call_provider(message_id, channel, sender, to, body, gate, attempt)


def _call_provider(
    message_id: int,
    channel: ChannelInfo,
    sender: Any,
    to: str,
    body: str,
    gate: breaker.Gate,
    attempt: int,
) -> str:
    """The provider call of a claimed send (its ``send_started_at`` committed) and what
    follows: the breaker's bookkeeping, and either a release for a later attempt (returns)
    or the outcome to record (raises ``_Recorded``)."""
    started = time.monotonic()
    try:
        delivery: Delivery = sender(
            channel, to=to, body=body, status_callback=_status_callback(channel)
        )
    except SendFailure as failure:
        log.info("send message=%s failed kind=%s code=%s", message_id, failure.kind, failure.code)
        channel_down = False
        if failure.kind in (FailureKind.RETRY, FailureKind.AMBIGUOUS):
            channel_down = breaker.record_failure(channel.id, failure.code, gate) or gate.probe
        else:  # the provider answered (this number, this message): the channel works
            breaker.record_success(channel.id, gate)
        if failure.kind == FailureKind.RETRY:
            # A failure that (re)opened the breaker is the channel's, not this message's: it
            # waits, first in line, for as long as the outage lasts instead of giving up.
            if attempt > MAX_SEND_RETRIES and not channel_down:
                raise _after_call(
                    MessageStatus.FAILED,
                    "failed-retries",
                    error_code=failure.code,
                    error_message="gave up after retries: " + failure.message,
                ) from None
            delay = 0.0 if channel_down else backoff_seconds(attempt - 1)
            _release_claim(
                message_id, failure.code, failure.message, utcnow() + timedelta(seconds=delay)
            )
            return "deferred-retry"
        if failure.kind == FailureKind.AMBIGUOUS:
            raise _after_call(
                MessageStatus.UNKNOWN,
                "unknown",
                error_code=failure.code,
                error_message=failure.message,
            ) from None
        raise _after_call(
            MessageStatus.FAILED,
            "failed",
            error_code=failure.code,
            error_message=failure.message,
            opt_out_contact=failure.kind == FailureKind.OPTED_OUT,
        ) from None
    breaker.record_success(channel.id, gate)
    status = (
        delivery.status
        if delivery.status and RANK[delivery.status] > RANK[MessageStatus.SENT]
        else MessageStatus.SENT
    )
    log.info("sent message=%s in %.0f ms", message_id, (time.monotonic() - started) * 1000)
    raise _after_call(status, "sent", provider_id=delivery.provider_id)


def send_claimed(session: Session) -> list[str]:
    """Send the replies ``session`` wrote claimed (``queue_sms(send_now=True)``), right after
    its commit; returns each send's outcome. Never raises: a reply whose outcome cannot be
    recorded is handed to ``gateway.send_outbound``'s record-only path; one that cannot even
    be handed over stays SENDING, and the sweep records it UNKNOWN — never sent twice."""
    from gateway.outbound import take_claimed

    results = []
    for claimed in take_claimed(session):
        try:
            results.append(_send_claimed(claimed))
        except Exception as exc:
            # The type only, like every other send log: a traceback can carry a driver's SQL
            # parameters (the reply's body) or a provider's error text.
            log.error(
                "inline send message=%s: %s, left for the sweep",
                claimed.message_id,
                type(exc).__name__,
            )
            results.append("left-for-sweep")
    return results


def _send_claimed(claimed: Any) -> str:
    message_id = claimed.message_id
    try:
        return _call_provider(
            message_id,
            claimed.channel,
            _sender(claimed.channel),
            claimed.to,
            claimed.body,
            claimed.gate,
            attempt=1,
        )
    except _Recorded as pending:
        try:
            _finish(message_id, **_outcome_args(pending.outcome))
        except TRANSIENT_ERRORS:
            publish(SEND_OUTBOUND, [message_id, "reply", pending.outcome])
        return pending.result


# --- periodic -----------------------------------------------------------------------------


@celery_app.task(name="gateway.relay_inbound", ignore_result=True)
def relay_inbound() -> int:
    from gateway.inbound import relay_stuck_inbound

    return relay_stuck_inbound()


@celery_app.task(name="gateway.replay_spool", ignore_result=True)
def replay_spool() -> int:
    from gateway.spool import replay_spool as replay

    return replay()


@single_run("gateway.sweep_outbound", skipped=(0, 0))
def sweep_outbound(
    *,
    stuck_sending: timedelta = STUCK_SENDING_AFTER,
    stuck_pending: timedelta = STUCK_PENDING_AFTER,
    stuck_queued: timedelta = STUCK_QUEUED_AFTER,
    limit: int = 500,
) -> tuple[int, int]:
    """Settle messages whose sending task vanished. Returns (marked unknown, re-published).

    SENDING with a marker long past any provider timeout: the worker died mid-call and the
    broker has not redelivered yet — record UNKNOWN (never resend). PENDING with no claim
    (``send_started_at`` unset) for ``stuck_pending`` (30 s), or QUEUED past any throttle
    backoff: the task was lost (database or broker down when it ran, broker flushed) —
    publish it again. Each such row is claimed for this sweep by one compare-and-set UPDATE
    (``status_updated_at`` still old → now, RETURNING id), so two sweeps running at once
    publish it once; the send claim (``_claim``) makes any duplicate task harmless anyway.
    """
    now = utcnow()
    with get_sessionmaker()() as session:
        unknown = session.execute(
            update(Message)
            .where(
                Message.direction == MessageDirection.OUTBOUND,
                Message.status == MessageStatus.SENDING,
                Message.provider_id.is_(None),
                Message.send_started_at < now - stuck_sending,
            )
            .values(status=MessageStatus.UNKNOWN, error_code="interrupted", status_updated_at=now)
        )
        lost = or_(
            and_(
                Message.status == MessageStatus.PENDING,
                Message.status_updated_at < now - stuck_pending,
            ),
            and_(
                Message.status == MessageStatus.QUEUED,
                Message.next_attempt_at.is_(None),
                Message.status_updated_at < now - stuck_queued,
            ),
        )
        unclaimed = and_(
            Message.direction == MessageDirection.OUTBOUND, Message.send_started_at.is_(None), lost
        )
        candidates = (
            select(Message.id).where(unclaimed).order_by(Message.id).limit(limit).scalar_subquery()
        )
        stuck = sorted(
            session.scalars(
                update(Message)
                .where(Message.id.in_(candidates), unclaimed)
                .values(status_updated_at=now)
                .returning(Message.id),
                execution_options={"synchronize_session": False},
            )
        )
        session.commit()
    republished = 0
    for message_id in stuck:
        try:
            publish(SEND_OUTBOUND, [message_id, SWEPT_KIND])
        except Exception as exc:  # broker down: the rows come round again in 30 s
            log.warning("sweep: broker unavailable (%s), %d left", type(exc).__name__, len(stuck))
            break
        republished += 1
    interrupted = int(getattr(unknown, "rowcount", 0) or 0)
    if stuck or interrupted:
        log.info("sweep: %d re-published, %d interrupted", republished, interrupted)
    return interrupted, republished


@single_run("gateway.send_due", skipped=0)
def send_due(*, now: datetime | None = None, limit: int = 500) -> int:
    """Publish the QUEUED sends whose next attempt is due (oldest first), except on channels
    whose breaker holds them; a half-open channel gets one (the probe). Each row is claimed
    by a compare-and-set UPDATE that moves ``next_attempt_at`` a lease ahead, so two sweeps
    never publish it twice and a task lost on the way is published again after the lease.
    Returns how many were published."""
    moment = now or utcnow()
    with get_sessionmaker()() as session:
        held, probing = breaker.held_channels(session, now=moment)
        due = and_(
            Message.direction == MessageDirection.OUTBOUND,
            Message.status == MessageStatus.QUEUED,
            Message.send_started_at.is_(None),
            Message.next_attempt_at <= moment,
        )
        order = (Message.next_attempt_at, Message.id)
        chosen = list(
            session.scalars(
                select(Message.id)
                .where(due, not_(Message.channel_id.in_(held | probing)))
                .order_by(*order)
                .limit(limit)
            )
        )
        for channel_id in sorted(probing):
            first = session.scalar(
                select(Message.id).where(due, Message.channel_id == channel_id).order_by(*order)
            )
            if first is not None:
                chosen.append(first)
        claimed = (
            set(
                session.scalars(
                    update(Message)
                    .where(Message.id.in_(chosen), due)
                    .values(next_attempt_at=moment + DUE_LEASE)
                    .returning(Message.id),
                    execution_options={"synchronize_session": False},
                )
            )
            if chosen
            else set()
        )
        session.commit()
    published = 0
    for message_id in [m for m in chosen if m in claimed]:
        try:
            publish(SEND_OUTBOUND, [message_id, SWEPT_KIND])
        except Exception as exc:  # broker down: published again once the lease lapses
            log.warning("send-due: broker unavailable (%s)", type(exc).__name__)
            break
        published += 1
    if published:
        log.info("send-due: %d published", published)
    return published


@celery_app.task(name="gateway.send_due", ignore_result=True)
def send_due_task() -> int:
    return send_due()


@celery_app.task(name="gateway.sweep_outbound", ignore_result=True)
def sweep_outbound_task() -> list[int]:
    return list(sweep_outbound())


@celery_app.task(name="gateway.reconcile_unknown", ignore_result=True)
def reconcile_unknown_task() -> list[int]:
    """Unknown sends: Twilio look-ups, and the warning when their share is too high."""
    from gateway.delivery import reconcile_unknown

    return list(reconcile_unknown())


@celery_app.task(name="gateway.request_callback", ignore_result=True, acks_late=True)
def request_callback_task(call_id: int) -> int | None:
    from gateway.calls import process_callback_request

    return process_callback_request(call_id)
