"""Helpers shared by the tests (importable as ``support`` thanks to pytest's pythonpath)."""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def var_dir_for_tests() -> Path:
    return Path(os.environ["DEME_VAR_DIR"])


def wait_until(
    predicate: Callable[[], object], timeout: float = 20.0, interval: float = 0.1
) -> None:
    """Poll ``predicate()`` until it is truthy; fail the test with a clear message otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    pytest.fail(f"condition not met within {timeout}s: {predicate!r}")


def queued_tasks(redis: Any, queue: str | None = None) -> list[tuple[str, list[Any]]]:
    """(task name, args) of every message waiting in a Celery/kombu Redis queue (default:
    every queue of the topology, ``core.celery_app.QUEUES``)."""
    from core.celery_app import QUEUES

    tasks = []
    for name in QUEUES if queue is None else (queue,):
        for raw in redis.lrange(name, 0, -1):
            envelope = json.loads(raw)
            args, _kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
            tasks.append((envelope["headers"]["task"], args))
    return tasks
