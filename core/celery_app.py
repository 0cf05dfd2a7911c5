"""The Celery application.

Redis is the broker when ``DEME_REDIS_URL`` is set. Without it (the embedded default of
``make run``), the broker is a Valkey server shipped as a Python wheel, which ``deme run``
starts under ``var/broker`` (``core.broker``): the same transport and code as the server
stack, on a bare machine with no system install.
Tasks receive ids and reload rows; they are published only after the transaction that
created their rows committed (see ``models.outbox_relay``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from celery import Celery
from celery.schedules import crontab

from core.broker import EmbeddedBroker, celery_url
from core.logging import install_redaction
from core.settings import Settings, get_settings

# --- the topology: queues, routes, workers (one declaration for `deme run`, compose, tests) --
# Bulkheads: each kind of work has its own queue and its own worker slots, so a provider
# that is down or slow never delays intake or bot turns, and a burst of conversations never
# delays sends. Retries never wait in the broker: a send or alert waiting for its backoff (or
# for its channel's circuit breaker to close) waits in the database, and a due-sweep
# re-publishes it (gateway.send_due, tickets.retry_alerts).
INTAKE_QUEUE = "intake"  # inbound messages, ticket processing, missed-call tickets
CONVERSATION_QUEUE = "conversation"  # bot turns (wait on Rasa up to a second each)
OUTBOUND_QUEUE = "outbound"  # provider calls (SMS sends)
ALERTS_QUEUE = "alerts"  # team alerts (SMTP / webhook) and sender notifications
PERIODIC_QUEUE = "periodic"  # beat's sweeps and relays
QUEUES = (INTAKE_QUEUE, CONVERSATION_QUEUE, OUTBOUND_QUEUE, ALERTS_QUEUE, PERIODIC_QUEUE)
ALL_QUEUES = ",".join(QUEUES)
# A task with no route would land here: intake is the queue nobody may starve (a test checks
# that every registered task has an explicit route).
DEFAULT_QUEUE = INTAKE_QUEUE

TASK_QUEUES: dict[str, str] = {
    "gateway.process_inbound": INTAKE_QUEUE,
    "tickets.process_intake": INTAKE_QUEUE,
    "gateway.request_callback": INTAKE_QUEUE,
    "conversation.handle_message": CONVERSATION_QUEUE,
    "conversation.forget": CONVERSATION_QUEUE,  # wipes an erased sender's Rasa tracker
    "gateway.send_outbound": OUTBOUND_QUEUE,
    "tickets.deliver_alert": ALERTS_QUEUE,
    "tickets.notify_sender": ALERTS_QUEUE,
    "tickets.notify_incident_closed": ALERTS_QUEUE,
    "core.relay_outbox": PERIODIC_QUEUE,
    "gateway.relay_inbound": PERIODIC_QUEUE,
    "gateway.replay_spool": PERIODIC_QUEUE,
    "gateway.sweep_outbound": PERIODIC_QUEUE,
    "gateway.send_due": PERIODIC_QUEUE,
    # A short tick: hands each sending broadcast's next batch (the channel's rate times the
    # tick) to the outbound path; the sends themselves are gateway.send_outbound's.
    "gateway.broadcast_tick": PERIODIC_QUEUE,
    # Scheduled by beat, but its work is provider look-ups: with the provider's other calls,
    # so a provider that hangs never holds an intake slot.
    "gateway.reconcile_unknown": OUTBOUND_QUEUE,
    "tickets.check_sla": PERIODIC_QUEUE,
    "tickets.finish_erasures": PERIODIC_QUEUE,
    "tickets.retry_alerts": PERIODIC_QUEUE,
    "tickets.sweep_notifications": PERIODIC_QUEUE,
    "tickets.purge_retention": PERIODIC_QUEUE,
}


@dataclass(frozen=True)
class WorkerSpec:
    """One Celery worker of the topology: a `deme run` child and a compose service."""

    name: str
    queues: tuple[str, ...]
    pool: str
    concurrency: int

    def arguments(self) -> list[str]:
        """``celery -A core.celery_app:celery_app`` + these (compose: exactly these)."""
        return [
            "worker",
            "--loglevel=INFO",
            f"--pool={self.pool}",
            f"--concurrency={self.concurrency}",
            "--without-gossip",
            "-Q",
            ",".join(self.queues),
        ]


# Sized for two cores, measured (README, "Bulkheads"): one prefork worker for the CPU-bound
# work (intake first, then the short periodic sweeps: with Redis the queues are polled in
# this order), thread pools for the work that waits on a remote party (Rasa, the SMS
# provider, SMTP / webhooks) — threads cost little CPU while they wait.
WORKERS = (
    WorkerSpec("worker", (INTAKE_QUEUE, PERIODIC_QUEUE), "prefork", 2),
    WorkerSpec("bot-worker", (CONVERSATION_QUEUE,), "threads", 8),
    WorkerSpec("outbound-worker", (OUTBOUND_QUEUE,), "threads", 8),
    WorkerSpec("alerts-worker", (ALERTS_QUEUE,), "threads", 2),
)

# Every module that defines tasks; the worker imports them at start.
TASK_MODULES = [
    "deme.tasks",
    "conversation.dispatch",
    "tickets.tasks",
    "gateway.tasks",
    "gateway.broadcasts",
]


def broker_options(settings: Settings) -> tuple[str, dict[str, Any]]:
    """Kombu URL and transport options: ``DEME_REDIS_URL`` when set, else the embedded
    Valkey under ``var/broker`` (``core.broker``; ``deme run`` starts it)."""
    url = settings.redis_url or EmbeddedBroker.for_settings(settings).url
    return celery_url(url), {
        # Fail fast when Redis is down: the caller falls back to the outbox relay.
        "socket_timeout": 2,
        "socket_connect_timeout": 2,
        "max_retries": 0,
        # acks_late: a task taken by a worker that dies is redelivered after this.
        "visibility_timeout": 600,
    }


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """The one place where periodic work is declared."""
    return {
        "relay-outbox": {
            "task": "core.relay_outbox",
            "schedule": timedelta(seconds=settings.outbox_relay_seconds),
        },
        # Gateway: inbound messages the broker never got, the disk spool written while the
        # database was down, outbound messages whose task was lost (PENDING > 30 s unclaimed)
        # or whose worker vanished mid-send, and sends of unknown outcome (provider look-up).
        "gateway-relay-inbound": {
            "task": "gateway.relay_inbound",
            "schedule": timedelta(seconds=settings.outbox_relay_seconds),
        },
        "gateway-replay-spool": {"task": "gateway.replay_spool", "schedule": timedelta(seconds=10)},
        # Sends waiting for their backoff or for their channel's breaker: re-published when
        # due (the retry waits in the database, never in the broker or a worker).
        "gateway-send-due": {
            "task": "gateway.send_due",
            "schedule": timedelta(seconds=settings.outbound_due_seconds),
        },
        # Broadcasts: scheduled ones start, sending ones get their next batch.
        "gateway-broadcast-tick": {
            "task": "gateway.broadcast_tick",
            "schedule": timedelta(seconds=settings.broadcast_tick_seconds),
        },
        "gateway-sweep-outbound": {
            "task": "gateway.sweep_outbound",
            "schedule": timedelta(seconds=30),
        },
        "gateway-reconcile-unknown": {
            "task": "gateway.reconcile_unknown",
            "schedule": timedelta(minutes=1),
        },
        # SLA breaches are escalated within a minute of the deadline.
        "tickets-check-sla": {"task": "tickets.check_sla", "schedule": timedelta(minutes=1)},
        # Numbers kept to send an erasure confirmation: gone once sent, or after 15 minutes.
        "tickets-finish-erasures": {
            "task": "tickets.finish_erasures",
            "schedule": timedelta(minutes=1),
        },
        # Alerts whose retry is due (or whose worker died mid-attempt) are sent again.
        # Their backoff waits in the database (next_attempt_at), so the sweep runs often.
        "tickets-retry-alerts": {
            "task": "tickets.retry_alerts",
            "schedule": timedelta(seconds=5),
        },
        # Sender notifications whose task failed or was lost are sent within a minute.
        "tickets-sweep-notifications": {
            "task": "tickets.sweep_notifications",
            "schedule": timedelta(minutes=1),
        },
        # Retention runs at night (UTC = Mali time), away from the daytime hotline load.
        "tickets-purge-retention": {
            "task": "tickets.purge_retention",
            "schedule": crontab(hour=2, minute=30),
        },
    }


def make_celery(settings: Settings) -> Celery:
    broker_url, transport_options = broker_options(settings)
    app = Celery("deme", broker=broker_url, include=TASK_MODULES)
    app.conf.update(
        # "priority": a worker polls its queues in the declared order (Redis), so the
        # intake queue is served before the periodic one.
        broker_transport_options={"queue_order_strategy": "priority", **transport_options},
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=2,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=DEFAULT_QUEUE,
        task_routes={name: {"queue": queue} for name, queue in TASK_QUEUES.items()},
        task_serializer="json",
        accept_content=["json"],
        timezone="UTC",
        enable_utc=True,
        beat_schedule=beat_schedule(settings),
        beat_schedule_filename=str(settings.var_dir / "celerybeat-schedule"),
        task_always_eager=settings.celery_always_eager,
        worker_hijack_root_logger=False,
    )
    return app


# Worker and beat log through Celery's own handlers: every record is scrubbed of phone
# numbers and secrets at creation (core.logging), whichever handler writes it.
install_redaction()
celery_app = make_celery(get_settings())
