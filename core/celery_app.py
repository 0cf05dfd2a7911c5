"""The Celery application.

Redis is the broker when ``DEME_REDIS_URL`` is set. Without it (the embedded default of
``make run``), the broker is a Valkey server shipped as a Python wheel, which ``deme run``
starts under ``var/broker`` (``core.broker``): the same transport and code as the server
stack, on a bare machine with no system install.
Tasks receive ids and reload rows; they are published only after the transaction that
created their rows committed (see ``models.outbox_relay``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery import Celery
from celery.schedules import crontab

from core.broker import EmbeddedBroker, celery_url
from core.logging import install_redaction
from core.settings import Settings, get_settings

# Bot turns wait on Rasa for up to a second each: they get their own queue (and a thread-pool
# worker in `deme run` / compose) so opt-out keywords, outbound sends and alerts never queue
# behind them.
DEFAULT_QUEUE = "deme"
CONVERSATION_QUEUE = "conversation"
ALL_QUEUES = f"{DEFAULT_QUEUE},{CONVERSATION_QUEUE}"

# Every module that defines tasks; the worker imports them at start.
TASK_MODULES = [
    "deme.tasks",
    "conversation.dispatch",
    "tickets.tasks",
    "gateway.tasks",
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
        "tickets-retry-alerts": {"task": "tickets.retry_alerts", "schedule": timedelta(minutes=1)},
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
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=2,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=DEFAULT_QUEUE,
        task_routes={"conversation.*": {"queue": CONVERSATION_QUEUE}},
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
