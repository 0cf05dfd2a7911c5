"""Platform-wide periodic tasks that need the models (the outbox relay).

Their names keep the ``core.`` prefix they were published under: beat schedules and messages
already queued carry it.
"""

from __future__ import annotations

from core.celery_app import celery_app
from models.outbox_relay import purge_published, relay_pending


@celery_app.task(name="core.relay_outbox", ignore_result=True)
def relay_outbox() -> int:
    published = relay_pending()
    purge_published()
    return published
