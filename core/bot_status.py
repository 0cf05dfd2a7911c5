"""Is the Rasa bot ready to answer? One probe for /readyz and the console's banner.

Rasa opens its port only once its model is loaded (about a minute after `deme run` starts on
two cores, longer on a first start that trains it). Until then the conversation worker
answers with the keyword fallback (bot/dispatch.py), and the console says so instead of
silently serving fallback replies. The console asks on every page, so the answer is cached:
briefly while the bot is loading (the banner goes away within seconds of Rasa being ready),
longer once it is ready.
"""

from __future__ import annotations

import threading
import time

import httpx

from core.settings import Settings, get_settings

# How long an answer is reused: a loading bot is asked again soon, a ready one rarely.
LOADING_RECHECK_SECONDS = 2.0
READY_RECHECK_SECONDS = 30.0
# Rasa runs next to the web app: a refused connection is immediate, and a page must not wait
# long on a bot that hangs.
PROBE_TIMEOUT_SECONDS = 0.5


def rasa_status(settings: Settings) -> str | None:
    """None when the configured bot can answer (always for the fallback), else why not."""
    if settings.bot == "fallback":
        return None
    params = {"token": settings.rasa_token.get_secret_value()} if settings.rasa_token else None
    try:
        response = httpx.get(
            f"{settings.rasa_url}/status", params=params, timeout=PROBE_TIMEOUT_SECONDS
        )
    except httpx.HTTPError as exc:
        return f"rasa unreachable at {settings.rasa_url}: {type(exc).__name__}"
    if response.status_code in (401, 403):
        # /status is protected by a token we do not hold: Rasa answers, so its model is loaded
        # (it opens its port only after loading).
        return None
    if response.status_code != 200:
        return f"rasa answered {response.status_code} (model still loading?)"
    try:
        loaded = bool(response.json().get("model_file"))
    except ValueError:
        loaded = False
    return None if loaded else "rasa has no model loaded yet"


class _Cached:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[str, str] | None = None
        self._reason: str | None = None
        self._until = float("-inf")

    def reason(self, settings: Settings) -> str | None:
        key = (settings.bot, settings.rasa_url)
        if key == self._key and time.monotonic() < self._until:
            return self._reason
        with self._lock:  # one probe at a time; the others reuse its answer
            if key == self._key and time.monotonic() < self._until:
                return self._reason
            reason = rasa_status(settings)
            wait = READY_RECHECK_SECONDS if reason is None else LOADING_RECHECK_SECONDS
            self._key, self._reason, self._until = key, reason, time.monotonic() + wait
            return reason

    def forget(self) -> None:
        with self._lock:
            self._key = None


_cached = _Cached()


def bot_loading(settings: Settings | None = None) -> bool:
    """True while the configured bot is Rasa and it cannot answer yet (cached)."""
    settings = settings or get_settings()
    return settings.bot == "rasa" and _cached.reason(settings) is not None


def forget_bot_status() -> None:
    """Ask again at the next call (tests; not needed in production)."""
    _cached.forget()
