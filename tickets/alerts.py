"""Routed alerts: a delivery row per recipient, attempts, retries, and the no-content rule.

Creating an alert (``create_*``) only writes ``Alert`` rows and schedules
``tickets.deliver_alert(alert_id)`` through the outbox; delivering (``deliver_alert``) runs in
the worker: claim the row, send (SMS through the gateway, email over SMTP, signed JSON webhook),
record an ``AlertAttempt``, then mark it DELIVERED, schedule a retry with backoff, or mark it
FAILED with ``last_error`` for the console.

Restricted tickets (protection, or marked sensitive) produce alerts that carry only the reference
and "log in to view": subject, body, email and webhook payload are all built from the same two
strings, so no channel can leak what the others do not.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import smtplib
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import httpx
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.db import get_sessionmaker
from core.locks import single_run
from core.settings import Settings, get_settings
from models.alerts import Alert, AlertAttempt, AlertChannel
from models.base import utcnow
from models.config_cache import cached
from models.enums import AlertKind, AlertStatus, TicketCategory, TicketKind, UserRole
from models.outbox_relay import enqueue_after_commit, publish_committed
from models.places import Place
from models.teams import Team, TeamMember
from models.tickets import Incident, Ticket
from models.users import User
from tickets.i18n import translate

log = logging.getLogger(__name__)

DELIVER_TASK = "tickets.deliver_alert"
# A SENDING alert whose attempt started longer ago than this was interrupted (worker killed).
STALE_SENDING = timedelta(minutes=10)
SUMMARY_LIMIT = 140


def is_restricted(ticket: Ticket) -> bool:
    """Protection or sensitive: nothing but the reference may leave the console."""
    return ticket.sensitive or ticket.category == TicketCategory.PROTECTION


def _lang(settings: Settings | None = None) -> str:
    return (settings or get_settings()).alert_language


def _place_label(session: Session, place_id: int | None, lang: str) -> str:
    """ "Ansongo, Gao" — the place and its parent, enough for a team to know where."""
    place = session.get(Place, place_id) if place_id is not None else None
    if place is None:
        return translate("place.unknown", lang)
    parent = session.get(Place, place.parent_id) if place.parent_id is not None else None
    if parent is not None and parent.parent_id is not None:  # skip the country level
        return f"{place.name}, {parent.name}"
    return place.name


def _summary(ticket: Ticket) -> str:
    text = " ".join((ticket.summary or ticket.description or "").split())
    return text if len(text) <= SUMMARY_LIMIT else text[: SUMMARY_LIMIT - 1] + "…"


def ticket_alert_text(
    session: Session, ticket: Ticket, *, purpose: str = "new", deadline: str | None = None
) -> tuple[str, str]:
    """Subject and body of an alert about ``ticket`` (``purpose``: new | escalation)."""
    settings = get_settings()
    lang = _lang(settings)
    url = settings.public_url
    restricted = is_restricted(ticket)
    deadline_label = translate(f"sla.{deadline}", lang) if deadline else ""
    if ticket.kind == TicketKind.PSEA:
        # Not even the reference: whoever reads a focal point's phone or mailbox learns
        # nothing but that someone should log in (tickets.psea).
        key = "alert.psea" if purpose == "new" else "alert.escalation_psea"
        params: dict[str, object] = {"url": url}
    elif restricted:
        key = "alert.restricted" if purpose == "new" else "alert.escalation_restricted"
        params = {"reference": ticket.reference, "url": url}
    else:
        key = "alert.new" if purpose == "new" else "alert.escalation"
        params = {
            "reference": ticket.reference,
            "url": url,
            "category": translate(f"category.{ticket.category.value}", lang),
            "priority": translate(f"priority.{ticket.priority.value}", lang),
            "place": _place_label(session, ticket.place_id, lang),
            "summary": _summary(ticket),
        }
    params["deadline"] = deadline_label
    subject = translate(f"{key}.subject", lang, **params)[:200]
    body = translate(f"{key}.body", lang, **params).replace(" \n", "\n")
    return subject, body


def incident_alert_text(session: Session, incident: Incident) -> tuple[str, str]:
    settings = get_settings()
    lang = _lang(settings)
    params: dict[str, object] = {
        "incident": incident.reference,
        "count": incident.report_count,
        "url": settings.public_url,
    }
    if incident.category == TicketCategory.PROTECTION or _incident_has_sensitive(session, incident):
        key = "alert.surge_restricted"
    else:
        key = "alert.surge"
        params |= {
            "category": translate(f"category.{incident.category.value}", lang),
            "place": _place_label(session, incident.place_id, lang),
            "since": incident.opened_at.strftime("%d/%m %H:%M UTC"),
        }
    return (
        translate(f"{key}.subject", lang, **params)[:200],
        translate(f"{key}.body", lang, **params),
    )


def _incident_has_sensitive(session: Session, incident: Incident) -> bool:
    return (
        session.scalar(
            select(Ticket.id)
            .where(Ticket.incident_id == incident.id, Ticket.sensitive.is_(True))
            .limit(1)
        )
        is not None
    )


def _active_channels(session: Session, team_id: int | None) -> tuple[int, ...]:
    """The ids of the team's active alert channels, from the per-process configuration cache
    (models.config_cache: a statement per ticket otherwise; reloaded after any write)."""
    if team_id is None:
        return ()

    def load() -> tuple[int, ...]:
        return tuple(
            session.scalars(
                select(AlertChannel.id)
                .where(AlertChannel.team_id == team_id, AlertChannel.active.is_(True))
                .order_by(AlertChannel.id)
            )
        )

    return cached(session, ("alert-channels", team_id), load)


def _add_alert(session: Session, alert: Alert) -> Alert | None:
    """Insert unless an alert with the same ``dedupe_key`` exists; schedule its delivery."""
    existing = session.scalar(select(Alert.id).where(Alert.dedupe_key == alert.dedupe_key))
    if existing is not None:
        return None
    try:
        # A savepoint: a concurrent insert of the same key must not abort the caller's work.
        with session.begin_nested():
            session.add(alert)
            session.flush()
    except IntegrityError:
        return None
    enqueue_after_commit(session, DELIVER_TASK, alert.id)
    return alert


def create_ticket_alerts(
    session: Session, ticket: Ticket, *, now: datetime | None = None
) -> list[Alert]:
    """A "new ticket" alert on every active channel of the ticket's team."""
    subject, body = ticket_alert_text(session, ticket, purpose="new")
    return _alert_team_channels(
        session,
        ticket,
        reason="new_ticket",
        key_prefix=f"ticket:{ticket.id}:new",
        subject=subject,
        body=body,
        moment=now or utcnow(),
    )


def _alert_team_channels(
    session: Session,
    ticket: Ticket,
    *,
    reason: str,
    key_prefix: str,
    subject: str,
    body: str,
    moment: datetime,
) -> list[Alert]:
    """One alert per active channel of the ticket's team; the dedupe key (prefix + channel)
    makes a re-run add nothing."""
    created: list[Alert] = []
    for channel_id in _active_channels(session, ticket.team_id):
        alert = _add_alert(
            session,
            Alert(
                alert_channel_id=channel_id,
                team_id=ticket.team_id,
                ticket_id=ticket.id,
                reason=reason,
                dedupe_key=f"{key_prefix}:channel:{channel_id}",
                subject=subject,
                body=body,
                created_at=moment,
            ),
        )
        if alert is not None:
            created.append(alert)
    return created


def escalation_recipients(
    session: Session, team: Team | None, *, leads_only: bool = False
) -> list[User]:
    """The team lead(s) and every active supervisor, each once, by id (``leads_only``: a
    PSEA case, which no supervisor may know of)."""
    lead_ids: set[int] = set()
    if team is not None:
        if team.lead_user_id is not None:
            lead_ids.add(team.lead_user_id)
        lead_ids.update(
            session.scalars(
                select(TeamMember.user_id).where(
                    TeamMember.team_id == team.id, TeamMember.is_lead.is_(True)
                )
            )
        )
    users = session.scalars(
        select(User)
        .where(
            User.active.is_(True),
            User.id.in_(lead_ids)
            if leads_only
            else or_(User.id.in_(lead_ids), User.role == UserRole.SUPERVISOR),
        )
        .order_by(User.id)
    )
    return list(users)


def create_escalation_alerts(
    session: Session, ticket: Ticket, *, deadline: str, now: datetime | None = None
) -> list[Alert]:
    """An SLA breach (``deadline``: first_response | resolution): the team's channels, the
    team lead and the supervisors. The dedupe key makes a second run a no-op."""
    team = None if ticket.team_id is None else session.get(Team, ticket.team_id)
    subject, body = ticket_alert_text(session, ticket, purpose="escalation", deadline=deadline)
    moment = now or utcnow()
    base_key = f"ticket:{ticket.id}:sla:{deadline}"
    team_id = ticket.team_id
    created = _alert_team_channels(
        session,
        ticket,
        reason="escalation",
        key_prefix=base_key,
        subject=subject,
        body=body,
        moment=moment,
    )
    if team_id is None:
        # Alerts belong to a team; without one, the breach is on the timeline and dashboard.
        return created
    for user in escalation_recipients(session, team, leads_only=ticket.kind == TicketKind.PSEA):
        if not user.email:
            continue
        alert = _add_alert(
            session,
            Alert(
                recipient_user_id=user.id,
                team_id=team_id,
                ticket_id=ticket.id,
                reason="escalation",
                dedupe_key=f"{base_key}:user:{user.id}",
                subject=subject,
                body=body,
                created_at=moment,
            ),
        )
        if alert is not None:
            created.append(alert)
    return created


def upsert_surge_alerts(
    session: Session, incident: Incident, *, now: datetime | None = None
) -> list[Alert]:
    """One alert per team channel per incident, carrying the running count.

    Created when the surge threshold is reached; later reports only update the count on the
    same rows (the team is alerted once; a still-pending alert goes out with the latest count,
    a delivered one shows the current count in the console)."""
    subject, body = incident_alert_text(session, incident)
    created: list[Alert] = []
    for channel_id in _active_channels(session, incident.team_id):
        key = f"incident:{incident.id}:channel:{channel_id}"
        existing = session.scalar(select(Alert).where(Alert.dedupe_key == key))
        if existing is not None:
            existing.subject = subject
            existing.body = body
            continue
        alert = _add_alert(
            session,
            Alert(
                alert_channel_id=channel_id,
                team_id=incident.team_id,
                incident_id=incident.id,
                reason="surge",
                dedupe_key=key,
                subject=subject,
                body=body,
                created_at=now or utcnow(),
            ),
        )
        if alert is not None:
            created.append(alert)
    return created


def redact_ticket_alerts(session: Session, ticket_ids: Iterable[int]) -> int:
    """Rewrite the alerts of these tickets as restricted ones (erasure, retention)."""
    ids = list(ticket_ids)
    if not ids:
        return 0
    count = 0
    for alert in session.scalars(select(Alert).where(Alert.ticket_id.in_(ids))):
        ticket = session.get(Ticket, alert.ticket_id)
        if ticket is None:
            continue
        lang = _lang()
        params = {"reference": ticket.reference, "url": get_settings().public_url}
        key = "alert.restricted" if alert.reason == "new_ticket" else "alert.escalation_restricted"
        if ticket.kind == TicketKind.PSEA:
            key = "alert.psea" if alert.reason == "new_ticket" else "alert.escalation_psea"
        alert.subject = translate(f"{key}.subject", lang, **params)[:200]
        alert.body = translate(f"{key}.body", lang, **params)
        count += 1
    return count


# --- delivery ------------------------------------------------------------------------------


class DeliveryError(Exception):
    """One attempt failed. ``permanent``: retrying cannot help (bad address, no config)."""

    def __init__(self, message: str, *, permanent: bool = False, status_code: int | None = None):
        super().__init__(message)
        self.permanent = permanent
        self.status_code = status_code


@dataclass(frozen=True)
class Delivery:
    """What the sender needs, read while the row was claimed (no ORM object crosses)."""

    alert_id: int
    attempt_id: int
    attempt_no: int
    kind: AlertKind
    target: dict[str, Any]
    subject: str
    body: str
    reason: str
    reference: str | None
    incident: str | None
    created_at: datetime


def retry_delay(attempt_no: int, settings: Settings) -> timedelta:
    """Exponential backoff with ±10 % jitter (so retries of a burst do not align)."""
    base = settings.alert_retry_base_seconds * (2 ** max(attempt_no - 1, 0))
    return timedelta(seconds=base * random.uniform(0.9, 1.1))


def _claim(session: Session, alert_id: int, now: datetime) -> Delivery | None:
    alert = session.get(Alert, alert_id, with_for_update=True)
    if alert is None or alert.status in (AlertStatus.DELIVERED, AlertStatus.FAILED):
        return None
    if alert.status == AlertStatus.SENDING:
        return None  # another worker holds it; the sweep reclaims it if that worker died
    if alert.next_attempt_at is not None and alert.next_attempt_at > now:
        return None  # a retry is scheduled for later
    if alert.alert_channel_id is not None:
        channel = session.get(AlertChannel, alert.alert_channel_id)
        if channel is None:
            return None
        kind, target = channel.kind, dict(channel.target or {})
        if not channel.active:
            _fail(alert, "channel deactivated")
            return None
    else:
        user = session.get(User, alert.recipient_user_id) if alert.recipient_user_id else None
        if user is None or not user.email or not user.active:
            _fail(alert, "recipient has no email address or is inactive")
            return None
        kind, target = AlertKind.EMAIL, {"email": user.email}
    ticket = session.get(Ticket, alert.ticket_id) if alert.ticket_id else None
    incident = session.get(Incident, alert.incident_id) if alert.incident_id else None
    alert.status = AlertStatus.SENDING
    alert.attempt_count += 1
    attempt = AlertAttempt(
        alert_id=alert.id, attempt_no=alert.attempt_count, ok=False, started_at=now
    )
    session.add(attempt)
    session.flush()
    return Delivery(
        alert_id=alert.id,
        attempt_id=attempt.id,
        attempt_no=attempt.attempt_no,
        kind=kind,
        target=target,
        subject=alert.subject,
        body=alert.body,
        reason=alert.reason,
        # A PSEA alert names no case at all, not even in a webhook's JSON (tickets.psea).
        reference=ticket.reference
        if ticket is not None and ticket.kind != TicketKind.PSEA
        else None,
        incident=incident.reference if incident is not None else None,
        created_at=alert.created_at,
    )


def _fail(alert: Alert, error: str) -> None:
    alert.status = AlertStatus.FAILED
    alert.last_error = error[:500]
    alert.next_attempt_at = None


def deliver_alert(alert_id: int, *, now: datetime | None = None) -> AlertStatus | None:
    """One delivery attempt of alert ``alert_id`` (the task body). Returns the new status,
    or None when there was nothing to do (already delivered, failed, in flight, not due)."""
    settings = get_settings()
    moment = now or utcnow()
    maker = get_sessionmaker()
    with maker() as session:
        delivery = _claim(session, alert_id, moment)
        session.commit()
    if delivery is None:
        return None
    error: DeliveryError | None = None
    try:
        status_code = _send(delivery, settings)
    except DeliveryError as exc:
        error, status_code = exc, exc.status_code
    except Exception as exc:  # an unexpected bug must still leave a visible, retried row
        log.exception("alert %s: unexpected delivery error", alert_id)
        error, status_code = DeliveryError(f"{type(exc).__name__}: {exc}"), None
    finished = utcnow() if now is None else moment
    retry_in: timedelta | None = None
    with maker() as session:
        alert = session.get(Alert, alert_id, with_for_update=True)
        attempt = session.get(AlertAttempt, delivery.attempt_id)
        if alert is None or attempt is None:
            return None
        attempt.finished_at = finished
        attempt.status_code = status_code
        if error is None:
            attempt.ok = True
            alert.status = AlertStatus.DELIVERED
            alert.delivered_at = finished
            alert.last_error = None
            alert.next_attempt_at = None
        else:
            attempt.error = str(error)[:500]
            alert.last_error = str(error)[:500]
            if error.permanent or alert.attempt_count >= settings.alert_max_attempts:
                alert.status = AlertStatus.FAILED
                alert.next_attempt_at = None
            else:
                retry_in = retry_delay(alert.attempt_count, settings)
                alert.status = AlertStatus.PENDING
                alert.next_attempt_at = moment + retry_in
        status = alert.status
        session.commit()
    # The retry waits in the database (next_attempt_at), not in the broker: the sweep
    # (retry_due_alerts, every few seconds) publishes it when due.
    return status


@single_run("tickets.retry_alerts", skipped=0)
def retry_due_alerts(*, now: datetime | None = None, limit: int = 200) -> int:
    """Periodic sweep: re-publish alerts whose retry is due, reclaim interrupted ones."""
    moment = now or utcnow()
    maker = get_sessionmaker()
    with maker() as session:
        stale = session.scalars(
            select(Alert)
            .where(Alert.status == AlertStatus.SENDING)
            .with_for_update(skip_locked=True)
            .limit(limit)
        ).all()
        for alert in stale:
            last = session.scalar(
                select(AlertAttempt)
                .where(AlertAttempt.alert_id == alert.id)
                .order_by(AlertAttempt.attempt_no.desc())
                .limit(1)
            )
            interrupted = last is None or (
                last.finished_at is None and last.started_at < moment - STALE_SENDING
            )
            if interrupted:
                if last is not None:
                    last.finished_at = moment
                    last.error = "interrupted (worker stopped during the attempt)"
                alert.status = AlertStatus.PENDING
                alert.next_attempt_at = moment
        due = list(
            session.scalars(
                select(Alert.id)
                .where(
                    Alert.status == AlertStatus.PENDING,
                    or_(Alert.next_attempt_at.is_(None), Alert.next_attempt_at <= moment),
                    Alert.created_at <= moment - timedelta(seconds=30),
                )
                .order_by(Alert.id)
                .limit(limit)
            )
        )
        for alert_id in due:
            enqueue_after_commit(session, DELIVER_TASK, alert_id)
        session.commit()
        publish_committed(session)
    return len(due)


def _send(delivery: Delivery, settings: Settings) -> int | None:
    if delivery.kind == AlertKind.EMAIL:
        return send_email(delivery, settings)
    if delivery.kind == AlertKind.WEBHOOK:
        return send_webhook(delivery, settings)
    if delivery.kind == AlertKind.SMS:
        return send_sms(delivery)
    raise DeliveryError(f"unknown alert kind {delivery.kind}", permanent=True)


def send_email(delivery: Delivery, settings: Settings) -> int | None:
    to = str(delivery.target.get("email") or "")
    if not to:
        raise DeliveryError("email channel has no address", permanent=True)
    if not settings.smtp_host:
        raise DeliveryError("DEME_SMTP_HOST is not set", permanent=True)
    message = EmailMessage()
    message["From"] = settings.smtp_from or f"deme@{settings.smtp_host}"
    message["To"] = to
    message["Subject"] = delivery.subject
    message["Message-ID"] = make_msgid(domain="deme")
    message["X-Deme-Alert-Id"] = str(delivery.alert_id)
    message.set_content(delivery.body)
    port = settings.smtp_port or 25
    try:
        with smtplib.SMTP(settings.smtp_host, port, timeout=settings.smtp_timeout_seconds) as smtp:
            smtp.ehlo()
            if settings.smtp_starttls or (
                settings.smtp_starttls is None and smtp.has_extn("starttls")
            ):
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if settings.smtp_user:
                secret = settings.smtp_password
                smtp.login(settings.smtp_user, secret.get_secret_value() if secret else "")
            smtp.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        raise DeliveryError(f"recipient refused: {_smtp_codes(exc)}", permanent=True) from exc
    except smtplib.SMTPResponseException as exc:
        # 5xx: the server will never accept it; 4xx: try again later.
        raise DeliveryError(
            f"SMTP {exc.smtp_code}", permanent=500 <= exc.smtp_code < 600, status_code=exc.smtp_code
        ) from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"SMTP unreachable: {type(exc).__name__}: {exc}") from exc
    return 250


def _smtp_codes(exc: smtplib.SMTPRecipientsRefused) -> str:
    # The refused address is the channel's own target; report codes only, not the address.
    return ", ".join(str(code) for code, _msg in exc.recipients.values())


def webhook_payload(delivery: Delivery) -> dict[str, Any]:
    """The JSON a webhook receives. ``text`` makes chat tools (Slack, Mattermost, Teams
    incoming webhooks) render it as is; it is the alert body, already restricted."""
    return {
        "alert_id": delivery.alert_id,
        "reason": delivery.reason,
        "reference": delivery.reference,
        "incident": delivery.incident,
        "subject": delivery.subject,
        "text": delivery.body,
        "created_at": delivery.created_at.isoformat(),
        "attempt": delivery.attempt_no,
    }


def sign_body(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def send_webhook(delivery: Delivery, settings: Settings) -> int | None:
    url = str(delivery.target.get("url") or "")
    if not url.startswith(("http://", "https://")):
        raise DeliveryError("webhook channel has no http(s) URL", permanent=True)
    body = json.dumps(webhook_payload(delivery), ensure_ascii=False, sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "Deme-alerts/1",
        "X-Deme-Alert-Id": str(delivery.alert_id),
    }
    secret = delivery.target.get("secret")
    if secret:
        headers["X-Deme-Signature"] = sign_body(str(secret), body)
    try:
        response = httpx.post(
            url,
            content=body,
            headers=headers,
            timeout=settings.webhook_timeout_seconds,
            follow_redirects=False,
        )
    except httpx.HTTPError as exc:
        raise DeliveryError(f"webhook unreachable: {type(exc).__name__}") from exc
    code = response.status_code
    if 200 <= code < 300:
        return code
    transient = code in (408, 425, 429) or code >= 500
    raise DeliveryError(f"webhook answered HTTP {code}", permanent=not transient, status_code=code)


def send_sms(delivery: Delivery) -> int | None:
    """Hand the alert to the gateway as an outbound SMS to the focal point's number."""
    phone = str(delivery.target.get("phone") or "")
    if not phone:
        raise DeliveryError("SMS channel has no phone number", permanent=True)
    try:
        from gateway.outbound import queue_sms  # written in parallel (issue 3)
    except ImportError as exc:
        raise DeliveryError("gateway.outbound is not available") from exc
    from core.phones import InvalidPhoneNumber
    from tickets.contacts import get_or_create_contact

    with get_sessionmaker()() as session:
        try:
            contact = get_or_create_contact(session, phone)
        except InvalidPhoneNumber as exc:
            raise DeliveryError("SMS channel number is invalid", permanent=True) from exc
        message = queue_sms(session, contact=contact, body=delivery.body, kind="alert")
        if message is None:
            raise DeliveryError("focal point opted out of SMS", permanent=True)
        session.commit()
        publish_committed(session)
    return None
