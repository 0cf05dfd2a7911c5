"""The retry rule of tasks after a database/broker error (periodic tasks: deme.tasks)."""

from __future__ import annotations

import logging
import random
from typing import Any

from core.db import TRANSIENT_ERRORS

log = logging.getLogger(__name__)

# Database / broker briefly unavailable: retry soon (≤ 30 s apart), a bounded number of
# times; past that the beat sweeps (every minute) find the work again.
# This is the one retry that still waits in the worker (a Celery countdown): the database that
# would hold its state is what failed. It holds neither a pool slot nor a prefetch slot
# (Celery raises the prefetch count for a task with an ETA) and is bounded (≤ 30 s each).
# Every other wait — a provider's backoff, a throttle, an open circuit breaker, an alert's
# retry — lives in the database and is re-published by a due-sweep (gateway.send_due,
# tickets.retry_alerts).
MAX_TRANSIENT_RETRIES = 12


def transient_backoff_seconds(retries: int) -> float:
    """Retry delay after a database/broker error: 1, 2, 4 … s, capped at 30 s, ±25 %."""
    return min(30.0, 2.0**retries) * random.uniform(0.75, 1.25)


def retry_transient(task: Any, exc: BaseException) -> Exception:
    """The ``self.retry`` to raise after a database/broker error, or ``exc`` itself once the
    retries are spent (the periodic sweeps then find the work again)."""
    retries = int(task.request.retries or 0)
    log.warning(
        "task %s: %s, retry %d/%d",
        task.name,
        type(exc).__name__,
        retries + 1,
        MAX_TRANSIENT_RETRIES,
    )
    if retries >= MAX_TRANSIENT_RETRIES:
        return exc if isinstance(exc, Exception) else RuntimeError(type(exc).__name__)
    try:
        retry: Exception = task.retry(
            countdown=transient_backoff_seconds(retries), exc=exc, throw=False
        )
        return retry
    except TRANSIENT_ERRORS:  # the broker is down too: the sweep will find the work
        return exc if isinstance(exc, Exception) else RuntimeError(type(exc).__name__)
