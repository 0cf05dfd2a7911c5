"""Helpers shared by the tests (importable as ``support`` thanks to pytest's pythonpath)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

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
