"""Who is calling: passwords, API tokens, browser sessions, CSRF and login throttling.

Design choices (why):
- Passwords are hashed with argon2id (argon2-cffi's defaults, which follow RFC 9106's
  low-memory profile); a hash made with older parameters is transparently re-hashed at login.
- API tokens and browser sessions are both random secrets stored only as SHA-256 in
  ``api_tokens``: a leaked database dump does not let anyone act as a user, and a session can
  be revoked server-side (logout sets ``revoked_at``) without a separate sessions table.
  Browser sessions are recognised by their name prefix and are never accepted as bearer tokens
  (and bearer tokens are never accepted as cookies), so stealing one does not widen access.
- CSRF tokens are an HMAC of the session (or, before login, of a random per-browser seed)
  with ``DEME_SECRET_KEY``: nothing to store, and a token is useless with another session.
- Login throttling has two layers, and neither lets a stranger lock a real user out: per
  (account, client address) an exponential backoff (``login_backoffs``: survives restarts,
  shared by all web processes), so an attacker hammering the admin account from one address
  waits longer and longer while the admin logging in from elsewhere is not slowed at all; and
  per client address (in memory, a sliding window that slows down password spraying across
  many accounts from one address). The client address is the TCP peer unless the peer is a
  configured proxy (``DEME_TRUSTED_PROXIES``, see ``deme.app``): X-Forwarded-For from anyone
  else is ignored.
- Passwords: 12 to 1024 characters, used exactly as typed (never stripped or truncated), not
  in the shipped list of common passwords (``data/common-passwords.txt``), not only digits,
  not a run of one repeated character, not the username.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from core.logging import security_log
from core.settings import get_settings
from models.audit import record_audit
from models.base import utcnow
from models.enums import Language, UserRole
from models.users import ApiToken, LoginBackoff, User
from ops_console.i18n import N_

SESSION_COOKIE = "deme_session"
CSRF_SEED_COOKIE = "deme_csrf"
CSRF_FORM_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SESSION_TOKEN_NAME = "session"  # ApiToken.name of browser sessions
API_TOKEN_PREFIX = "deme_"
SESSION_LIFETIME = timedelta(hours=12)
# Refreshing last_used_at on every request would turn each page view into a write.
LAST_USED_RESOLUTION = timedelta(minutes=5)

# Per (account, address): this many failures are free, then each one doubles the wait.
FREE_FAILURES = 3
BACKOFF_BASE = timedelta(seconds=5)
BACKOFF_MAX = timedelta(minutes=15)
# A pair that has not failed for this long starts again from zero (and its row is pruned).
BACKOFF_FORGET = timedelta(hours=24)
IP_WINDOW_SECONDS = 15 * 60
IP_MAX_FAILURES = 30

_hasher = PasswordHasher()
# Verifying against a dummy hash when the user does not exist keeps the response time the same,
# so the login form does not reveal which usernames exist.
_DUMMY_HASH = _hasher.hash("deme-dummy-password-for-timing")


# --- passwords ---------------------------------------------------------------------------


class WeakPassword(ValueError):
    """The password does not meet the rules. ``str()`` is an English sentence (the CLI);
    ``message`` is the console catalog's msgid for the same rule."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
COMMON_PASSWORDS_FILE = Path(__file__).resolve().parent / "data" / "common-passwords.txt"

PASSWORD_TOO_SHORT = N_("At least 12 characters.")
PASSWORD_TOO_LONG = N_("At most 1024 characters.")
PASSWORD_COMMON = N_("This password is on the list of common passwords: choose another one.")
PASSWORD_DIGITS = N_("A password made only of digits is too easy to guess.")
PASSWORD_REPEATED = N_("A password made of one repeated character is too easy to guess.")
PASSWORD_USERNAME = N_("The password must not contain the username.")


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """The shipped list (lower case), read once; lines starting with ``#`` are comments."""
    with COMMON_PASSWORDS_FILE.open(encoding="utf-8") as source:
        return frozenset(
            line.strip().lower() for line in source if line.strip() and not line.startswith("#")
        )


def check_password_rules(password: str, *, username: str | None = None) -> None:
    """Raise WeakPassword naming the first rule ``password`` breaks. The password is judged
    exactly as typed: spaces count, nothing is stripped."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(PASSWORD_TOO_SHORT)
    if len(password) > MAX_PASSWORD_LENGTH:
        raise WeakPassword(PASSWORD_TOO_LONG)
    folded = password.lower()
    if folded in common_passwords() or folded.strip() in common_passwords():
        raise WeakPassword(PASSWORD_COMMON)
    if password.isdigit():
        raise WeakPassword(PASSWORD_DIGITS)
    if len(set(password)) == 1:
        raise WeakPassword(PASSWORD_REPEATED)
    if username and username.strip() and username.strip().lower() in folded:
        raise WeakPassword(PASSWORD_USERNAME)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        _hasher.hash(password)  # same cost as a real check
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def create_user(
    session: Session,
    *,
    username: str,
    role: UserRole,
    password: str | None = None,
    display_name: str | None = None,
    email: str | None = None,
    language: Language = Language.FRENCH,
    actor_label: str = "cli",
    actor_user_id: int | None = None,
) -> User:
    """Create a console user (or a service user without a password); flushes, audits."""
    username = username.strip()
    if not username:
        raise ValueError("username is empty")
    taken = select(User.id).where(func.lower(User.username) == username.lower())
    if session.scalar(taken) is not None:
        raise ValueError(f"user {username!r} already exists")
    if password is not None:
        check_password_rules(password, username=username)
    elif role != UserRole.SERVICE:
        raise ValueError("people need a password; only service users may have none")
    user = User(
        username=username,
        display_name=display_name or username,
        email=email,
        role=role,
        language=language,
        password_hash=hash_password(password) if password is not None else None,
    )
    session.add(user)
    session.flush()
    record_audit(
        session,
        action="user.created",
        actor_label=actor_label,
        actor_user_id=actor_user_id,
        object_type="user",
        object_id=user.id,
        role=role.value,
    )
    return user


def set_password(
    session: Session, user: User, password: str, *, actor_label: str, actor_user_id: int | None
) -> None:
    """Change a password; every open browser session of that user is revoked, and failed
    attempts against the account are forgotten."""
    check_password_rules(password, username=user.username)
    user.password_hash = hash_password(password)
    clear_backoff(session, user.username)
    revoke_sessions(session, user)
    record_audit(
        session,
        action="user.password_set",
        actor_label=actor_label,
        actor_user_id=actor_user_id,
        object_type="user",
        object_id=user.id,
    )


# --- tokens ------------------------------------------------------------------------------


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_api_token(
    session: Session, user: User, name: str, *, expires_at: datetime | None = None
) -> str:
    """Create a bearer token for ``user`` and return it. It is shown once: only its SHA-256
    and a short prefix (to recognise it in the console) are stored. Flushes; the caller
    records the audit entry (it knows who asked: the CLI or an admin in the console)."""
    if name.startswith(SESSION_TOKEN_NAME):
        raise ValueError(f"token names starting with {SESSION_TOKEN_NAME!r} are reserved")
    token = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiToken(
            user_id=user.id,
            name=name[:80],
            token_hash=_digest(token),
            prefix=token[:12],
            created_at=utcnow(),
            expires_at=expires_at,
        )
    )
    session.flush()
    return token


def revoke_api_token(
    session: Session, token: ApiToken, *, actor_label: str, actor_user_id: int | None
) -> None:
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        record_audit(
            session,
            action="api_token.revoked",
            actor_label=actor_label,
            actor_user_id=actor_user_id,
            object_type="api_token",
            object_id=token.id,
        )


def _usable_token(session: Session, raw: str, *, want_session: bool) -> ApiToken | None:
    if not raw or len(raw) > 200:
        return None
    # The user in the same statement: every API call needs it (one round trip, not two).
    row = session.scalar(
        select(ApiToken)
        .options(joinedload(ApiToken.user))
        .where(ApiToken.token_hash == _digest(raw))
    )
    if row is None or row.revoked_at is not None:
        return None
    if (row.name == SESSION_TOKEN_NAME) != want_session:
        return None
    now = utcnow()
    if row.expires_at is not None and row.expires_at <= now:
        return None
    user = row.user
    if not user.active:
        return None
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        row.last_used_at = now
    return row


def user_for_bearer_token(session: Session, raw: str) -> User | None:
    row = _usable_token(session, raw, want_session=False)
    return None if row is None else row.user


@dataclass(frozen=True)
class BrowserSession:
    user: User
    token_id: int
    token_hash: str


def open_session(session: Session, user: User) -> str:
    """A new browser session for ``user``; returns the cookie value."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        ApiToken(
            user_id=user.id,
            name=SESSION_TOKEN_NAME,
            token_hash=_digest(token),
            prefix=token[:6],
            created_at=now,
            last_used_at=now,
            expires_at=now + SESSION_LIFETIME,
        )
    )
    session.flush()
    return token


def session_for_cookie(session: Session, raw: str | None) -> BrowserSession | None:
    if not raw:
        return None
    row = _usable_token(session, raw, want_session=True)
    if row is None:
        return None
    return BrowserSession(user=row.user, token_id=row.id, token_hash=row.token_hash)


def close_session(session: Session, raw: str | None) -> None:
    row = _usable_token(session, raw or "", want_session=True)
    if row is not None:
        row.revoked_at = utcnow()


def revoke_sessions(session: Session, user: User) -> int:
    now = utcnow()
    rows = session.scalars(
        select(ApiToken).where(
            ApiToken.user_id == user.id,
            ApiToken.name == SESSION_TOKEN_NAME,
            ApiToken.revoked_at.is_(None),
        )
    ).all()
    for row in rows:
        row.revoked_at = now
    return len(rows)


def cookie_secure() -> bool:
    return get_settings().public_url.startswith("https://")


# --- CSRF --------------------------------------------------------------------------------


def csrf_token_for(seed: str) -> str:
    key = get_settings().secret_key.get_secret_value().encode("utf-8")
    return hmac.new(key, b"csrf:" + seed.encode("utf-8"), hashlib.sha256).hexdigest()


def csrf_valid(seed: str | None, submitted: str | None) -> bool:
    if not seed or not submitted:
        return False
    return hmac.compare_digest(csrf_token_for(seed), submitted)


def new_csrf_seed() -> str:
    return secrets.token_urlsafe(24)


# --- login -------------------------------------------------------------------------------


class _AddressThrottle:
    """Failed logins per client address over a sliding window (per process, in memory)."""

    def __init__(self, window_seconds: int, limit: int) -> None:
        self.window = window_seconds
        self.limit = limit
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _prune(self, address: str, now: float) -> deque[float]:
        entries = self._failures.setdefault(address, deque())
        while entries and entries[0] < now - self.window:
            entries.popleft()
        return entries

    def blocked(self, address: str) -> bool:
        with self._lock:
            return len(self._prune(address, time.monotonic())) >= self.limit

    def failed(self, address: str) -> None:
        with self._lock:
            now = time.monotonic()
            self._prune(address, now).append(now)
            if len(self._failures) > 10_000:  # bound memory under a spray from many addresses
                for key in list(self._failures)[:5_000]:
                    del self._failures[key]

    def reset(self) -> None:
        with self._lock:
            self._failures.clear()


address_throttle = _AddressThrottle(IP_WINDOW_SECONDS, IP_MAX_FAILURES)


def _account_key(username: str) -> str:
    return hashlib.sha256(b"account\0" + username.strip().lower().encode("utf-8")).hexdigest()


def _pair_key(username: str, address: str) -> str:
    raw = f"{username.strip().lower()}\0{address}".encode()
    return hashlib.sha256(b"pair\0" + raw).hexdigest()


def backoff_delay(failures: int) -> timedelta:
    """How long a pair with ``failures`` consecutive failures must wait before trying again."""
    if failures < FREE_FAILURES:
        return timedelta(0)
    exponent = min(failures - FREE_FAILURES, 20)
    delay: timedelta = min(BACKOFF_BASE * (2**exponent), BACKOFF_MAX)
    return delay


def _backoff_blocked(session: Session, username: str, address: str, now: datetime) -> bool:
    row = session.get(LoginBackoff, _pair_key(username, address))
    return row is not None and row.blocked_until is not None and row.blocked_until > now


def _backoff_failed(session: Session, username: str, address: str, now: datetime) -> None:
    key = _pair_key(username, address)
    row = session.get(LoginBackoff, key, with_for_update=True)
    if row is None:
        try:
            with session.begin_nested():  # two workers may fail the same pair at once
                session.add(
                    LoginBackoff(
                        key=key, account_key=_account_key(username), failures=0, last_failed_at=now
                    )
                )
        except IntegrityError:
            pass
        row = session.get(LoginBackoff, key, with_for_update=True, populate_existing=True)
        assert row is not None
    if now - row.last_failed_at > BACKOFF_FORGET:
        row.failures = 0
    row.failures += 1
    row.last_failed_at = now
    delay = backoff_delay(row.failures)
    row.blocked_until = now + delay if delay else None
    # Keep the table small: pairs that stopped failing long ago are forgotten.
    session.execute(delete(LoginBackoff).where(LoginBackoff.last_failed_at < now - BACKOFF_FORGET))
    session.flush()


def clear_backoff(session: Session, username: str, address: str | None = None) -> int:
    """Forget failures of one pair (after a successful login) or of every pair of an account
    (password reset, admin "unlock"); returns how many pairs were cleared."""
    if address is not None:
        where = LoginBackoff.key == _pair_key(username, address)
    else:
        where = LoginBackoff.account_key == _account_key(username)
    result = session.execute(delete(LoginBackoff).where(where))
    return int(getattr(result, "rowcount", 0) or 0)


class LoginRefused(Exception):
    """Login failed; ``reason`` is a catalog key, deliberately vague about which part was
    wrong ("invalid" covers unknown user, wrong password and inactive account)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def authenticate(session: Session, *, username: str, password: str, address: str) -> User:
    """Check credentials with throttling; flushes the counters; raises LoginRefused.

    ``password`` is compared exactly as typed. Failures slow down only the (account, address)
    pair that made them (and, past the window's limit, that address): the account itself is
    never locked, so nobody can lock a colleague out by typing wrong passwords."""
    if address_throttle.blocked(address):
        security_log().warning("login throttled for address")
        raise LoginRefused("throttled")
    now = utcnow()
    if _backoff_blocked(session, username, address, now):
        security_log().warning("login refused: backoff for account and address")
        raise LoginRefused("backoff")
    # Case-insensitive: the CLI stores usernames as typed, people type them as they like.
    user = session.scalar(
        select(User).where(func.lower(User.username) == username.strip().lower()).limit(1)
    )
    if (
        user is None
        or user.role == UserRole.SERVICE
        or not user.active
        or len(password) > MAX_PASSWORD_LENGTH
    ):
        verify_password(_DUMMY_HASH, password[:MAX_PASSWORD_LENGTH])
        address_throttle.failed(address)
        _backoff_failed(session, username, address, now)
        raise LoginRefused("invalid")
    if not verify_password(user.password_hash, password):
        address_throttle.failed(address)
        _backoff_failed(session, username, address, now)
        raise LoginRefused("invalid")
    if user.password_hash and _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    clear_backoff(session, username, address)
    user.last_login_at = now
    session.flush()
    return user
