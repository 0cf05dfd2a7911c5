"""The Celery application.

Redis is the broker when ``DEME_REDIS_URL`` is set. Without it (the embedded default of
``make run``), Kombu's filesystem transport carries the same tasks through a folder under
``var/``, so web, worker and beat run the same code on a bare machine with no server.
Tasks receive ids and reload rows; they are published only after the transaction that
created their rows committed (see ``core.outbox``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery import Celery
from celery.schedules import crontab

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
    "core.tasks",
    "bot.dispatch",
    "tickets.tasks",
    "gateway.tasks",
]


def broker_options(settings: Settings) -> tuple[str, dict[str, Any]]:
    if settings.redis_url:
        return settings.redis_url, {
            # Fail fast when Redis is down: the caller falls back to the outbox relay.
            "socket_timeout": 2,
            "socket_connect_timeout": 2,
            "max_retries": 0,
            # acks_late: a task taken by a worker that dies is redelivered after this.
            "visibility_timeout": 600,
        }
    folder = settings.var_dir / "broker"
    for sub in ("queue", "processed", "control"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    return "filesystem://", {
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
        "processed_folder": str(folder / "processed"),
        # Kombu's default is ./control in the working directory; keep everything under var/.
        "control_folder": str(folder / "control"),
        "store_processed": False,
        # Kombu polls the folder every second by default: up to a second per hop, and a
        # message crosses several (intake, bot turn, send). A listdir of a small folder ten
        # times a second per worker costs next to no CPU.
        "polling_interval": 0.1,
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
