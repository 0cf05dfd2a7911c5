"""Platform-wide periodic tasks."""

from __future__ import annotations

from core.celery_app import celery_app
from core.outbox import purge_published, relay_pending


@celery_app.task(name="core.relay_outbox", ignore_result=True)
def relay_outbox() -> int:
    published = relay_pending()
    purge_published()
    return published
