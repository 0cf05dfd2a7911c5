"""One USSD hop, end to end: who is calling, what they typed, the next screen.

The hot path (a navigation hop) is: hash the phone number (memoised), one Redis ``GET``, a few
dictionary look-ups in the engine, one Redis ``SET``. The database is only used on the first
hop of a session (contact look-up), when a language is first chosen, and for the final write;
those never block the event loop (``gateway.dbwork``: asyncio driver on PostgreSQL,
threads on SQLite), so it keeps serving other callers.

Whatever arrives — an unknown session, garbage, 500 characters, a ``*`` inside a typed name,
Redis or the database down — the answer is a ``CON``/``END`` screen: an HTTP error would kill
the caller's session without a word.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import cast

from prometheus_client import Counter, Histogram

from gateway.dbwork import in_db_thread, in_session
from gateway.ussd import actions
from gateway.ussd.engine import Action, MenuEngine, MenuState, Step
from gateway.ussd.places import default_directory
from gateway.ussd.store import (
    RESUME_WINDOW_SECONDS,
    CallerKey,
    SessionStore,
    StoreUnavailable,
    store_from_settings,
)

log = logging.getLogger(__name__)

HOPS = Counter("deme_ussd_hops_total", "USSD hops answered", ["outcome"])
# Time inside the service per hop, by kind: "nav" (state store only), "first" (plus the contact
# look-up), "final" (plus the final write). Fine buckets: the budget is a few milliseconds.
HOP_SECONDS = Histogram(
    "deme_ussd_hop_seconds",
    "USSD hop handling time in the service",
    ["kind"],
    buckets=(
        0.0005,
        0.001,
        0.002,
        0.003,
        0.005,
        0.0075,
        0.01,
        0.015,
        0.02,
        0.03,
        0.05,
        0.1,
        0.25,
        0.5,
        1.0,
    ),
)

# A first hop may carry a dial-string shortcut ("*123*2*1#" → text "2*1"); more inputs than
# any path needs is garbage and is not replayed.
MAX_FIRST_HOP_INPUTS = 12


class TextMode(StrEnum):
    """How an aggregator sends ``text``: the whole ``*``-joined path (Africa's Talking and
    most others), or only the latest input."""

    PATH = "path"
    LAST = "last"


@dataclass(frozen=True, slots=True)
class Hop:
    channel_id: int
    session_id: str
    phone: str
    service_code: str | None
    text: str
    text_mode: TextMode = TextMode.PATH


@dataclass(frozen=True, slots=True)
class HopAnswer:
    """The screen, and work to do once the aggregator has it (the caller never waits on it)."""

    text: str
    # Coroutine functions run on the event loop; plain functions (they may block) in a thread.
    after: tuple[Callable[[], object], ...] = ()

    async def run_after_async(self) -> None:
        """Run the after-answer work (Starlette's background task); failures are logged."""
        blocking = []
        for job in self.after:
            if inspect.iscoroutinefunction(job):
                try:
                    await cast(Callable[[], Awaitable[object]], job)()
                except Exception:
                    log.exception("ussd after-response work failed")
            else:
                blocking.append(job)
        if blocking:
            await in_db_thread(_run_all, blocking)


def _run_all(jobs: list[Callable[[], object]]) -> None:
    for job in jobs:
        try:
            job()
        except Exception:
            log.exception("ussd after-response work failed")


@dataclass(slots=True)
class _HopTrace:
    """What kind of hop this turned out to be, for the latency histogram."""

    kind: str = "nav"


@lru_cache(maxsize=8192)
def caller_identity(raw_phone: str) -> tuple[str, str] | None:
    """(E.164, keyed hash) of the caller, or None for something that is not a phone number.

    Memoised: parsing with ``phonenumbers`` and the HMAC are the costliest part of a hop, and a
    caller sends 5–10 hops. The cache lives in process memory only and is never logged.
    """
    from core.crypto import lookup_hash
    from core.phones import InvalidPhoneNumber, normalize_phone

    try:
        e164 = normalize_phone(raw_phone)
    except InvalidPhoneNumber:
        return None
    return e164, lookup_hash(e164)


def new_inputs(state: MenuState, text: str, mode: TextMode) -> list[str]:
    """What the caller typed since the previous hop of the same session."""
    if mode is TextMode.LAST:
        return [text]
    previous = state.last_text
    if previous and text.startswith(previous + "*"):
        # Everything after the previous path is ONE input, even if it contains "*".
        return [text[len(previous) + 1 :]]
    if not previous:
        return [text]
    # The path does not extend the previous one (an aggregator that rewrote it): the last
    # segment is the best guess at what was just typed.
    return [text.rsplit("*", 1)[-1]]


def first_inputs(text: str, mode: TextMode) -> list[str]:
    if not text:
        return []
    if mode is TextMode.LAST:
        return [text]
    return text.split("*")[:MAX_FIRST_HOP_INPUTS]


class UssdService:
    def __init__(
        self,
        engine: MenuEngine,
        store: SessionStore,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.store = store
        self.clock = clock

    async def handle(self, hop: Hop) -> str:
        """The screen for ``hop``, with the after-response work already done (for callers
        without a response to attach it to, such as the console's phone simulator)."""
        answer = await self.handle_hop(hop)
        await answer.run_after_async()
        return answer.text

    async def handle_hop(self, hop: Hop) -> HopAnswer:
        """The screen for ``hop`` and the work to run once it has been sent (the webhooks)."""
        after: list[Callable[[], object]] = []
        started = time.perf_counter()
        trace = _HopTrace()
        try:
            text = await self._handle(hop, after, trace)
        except StoreUnavailable as exc:
            log.warning("ussd state store unavailable: %s", exc)
            HOPS.labels("store_error").inc()
            return HopAnswer(self.engine.end(None, "end.error"))
        except Exception:
            log.exception("ussd hop failed channel_id=%s", hop.channel_id)
            HOPS.labels("error").inc()
            return HopAnswer(self.engine.end(None, "end.error"))
        HOPS.labels("end" if text.startswith("END") else "con").inc()
        HOP_SECONDS.labels(trace.kind).observe(time.perf_counter() - started)
        return HopAnswer(text, tuple(after))

    async def _handle(self, hop: Hop, after: list[Callable[[], object]], trace: _HopTrace) -> str:
        caller = caller_identity(hop.phone)
        if caller is None:
            return self.engine.end(None, "end.bad_phone")
        phone_e164, phone_hash = caller
        key = CallerKey(phone_hash, hop.channel_id, hop.session_id, hop.service_code)
        now = self.clock()
        state = await self.store.load(key)

        if state is not None and state.session_id == hop.session_id:
            if state.done or (hop.text_mode is TextMode.PATH and hop.text == state.last_text):
                return state.out  # an aggregator retry, or a hop after END: same answer
            inputs = new_inputs(state, hop.text, hop.text_mode)
        else:
            if hop.text and hop.text_mode is TextMode.PATH:
                # A known path for a session we hold no state for: either a dial-string
                # shortcut or a retried final hop whose state was lost. Only the database
                # can tell, and replaying a finished walk must never record it twice.
                replay = await in_session(actions.completed_answer, key, lookup=True)
                if replay is not None:
                    return replay
            trace.kind = "first"
            state = await self._start(hop, phone_e164, phone_hash, state, now)
            inputs = first_inputs(hop.text, hop.text_mode)

        state.hops += 1
        state.updated = now
        step = Step()
        for token in inputs:
            step = self.engine.feed(state, token)
            if step.action is not None:
                break

        if state.language_changed:
            state.language_changed = False
            if step.action is None and not self.store.needs_contact:
                # Nothing on screen depends on it: remember the language after answering.
                language = state.language
                after.append(
                    functools.partial(in_session, actions.ensure_contact, phone_e164, language)
                )
            else:
                info = await in_session(actions.ensure_contact, phone_e164, state.language)
                state.contact_id = info.contact_id

        if step.action is not None:
            trace.kind = "final"
            answer = await self._finish(step.action, key, phone_e164, state, after)
        else:
            answer = self.engine.render(state, step.notice)
        state.last_text = hop.text
        state.out = answer
        if state.done and step.action is Action.ERASE:
            # Keep only a tombstone (no choices, no contact id) for the short retry window: a
            # retried erase hop must get the same END, not replay the path and re-create the
            # contact that was just erased.
            await self.store.forget(key)
            state.data, state.stack, state.contact_id = {}, [], None
        await self.store.save(key, state)
        return answer

    async def _start(
        self,
        hop: Hop,
        phone_e164: str,
        phone_hash: str,
        previous: MenuState | None,
        now: float,
    ) -> MenuState:
        """A new aggregator session: look the caller up, and offer to resume a dropped walk."""
        if self.store.needs_contact:
            info: actions.ContactInfo | None = await in_session(
                actions.ensure_contact, phone_e164, None
            )
        else:
            info = await in_session(actions.lookup_contact, phone_hash, lookup=True)
        resume = (
            previous
            if previous is not None
            and previous.resumable
            and not hop.text  # a dial-string shortcut says what the caller wants now
            and now - previous.updated <= RESUME_WINDOW_SECONDS
            else None
        )
        return self.engine.new_state(
            hop.session_id,
            language=info.language if info else None,
            contact_id=info.contact_id if info else None,
            now=now,
            resume_from=resume,
        )

    async def _finish(
        self,
        action: Action,
        key: CallerKey,
        phone_e164: str,
        state: MenuState,
        after: list[Callable[[], object]],
    ) -> str:
        try:
            answer, publish = await in_session(
                actions.complete,
                self.engine,
                action,
                key,
                phone_e164,
                state,
                session_row_expected=self.store.needs_contact,
            )
        except Exception:
            # The walk stays where it is: dialling again offers to continue and retry.
            log.exception("ussd %s failed channel_id=%s", action.value, key.channel_id)
            return self.engine.end(state.language, "end.error")
        after.append(publish)
        state.done = True
        log.info(
            "ussd completed action=%s channel_id=%s hops=%s",
            action.value,
            key.channel_id,
            state.hops,
        )
        return answer


_service: UssdService | None = None


def default_service() -> UssdService:
    global _service
    if _service is None:
        _service = UssdService(MenuEngine(default_directory()), store_from_settings())
    return _service


def reset_default_service() -> None:
    """Forget the process-wide service (tests that switch settings)."""
    global _service
    _service = None
