"""How many requests the fuzz tests made and how many answered 5xx (summary line)."""

from __future__ import annotations

from collections import Counter

TALLY: Counter[str] = Counter()


def record(status_code: int) -> None:
    TALLY["requests"] += 1
    if status_code >= 500:
        TALLY["5xx"] += 1


def summary_line() -> str | None:
    """Printed by tests/conftest.py's ``pytest_terminal_summary`` when the fuzz ran."""
    if not TALLY["requests"]:
        return None
    return f"fuzz: {TALLY['requests']} requests tried, {TALLY['5xx']} answered 5xx"
