"""Short human references for tickets and incidents, easy to read out on the phone."""

from __future__ import annotations

import secrets

# No 0/O, 1/I/L, 5/S, 8/B, U/V: what an operator reads aloud, a caller can type back.
REFERENCE_ALPHABET = "234679ACDEFGHJKMNPQRTWXYZ"
REFERENCE_LENGTH = 5


def new_reference(prefix: str = "T") -> str:
    """``T-7K2Q9``: 25^5 ≈ 9.8 million values; callers retry on the (rare) unique clash."""
    body = "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(REFERENCE_LENGTH))
    return f"{prefix}-{body}"


def normalize_reference(text: str, prefix: str = "T") -> str | None:
    """Accept what people type back ("t7k2q9", "T 7K2Q9", "t-7k2q9") or None."""
    cleaned = "".join(ch for ch in text.upper() if ch.isalnum())
    if cleaned.startswith(prefix):
        cleaned = cleaned[len(prefix) :]
    if len(cleaned) != REFERENCE_LENGTH or any(ch not in REFERENCE_ALPHABET for ch in cleaned):
        return None
    return f"{prefix}-{cleaned}"
