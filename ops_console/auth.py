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
- Login throttling has two layers: per account (``User.failed_logins`` / ``locked_until``,
  survives restarts, shared by all web processes) and per client address (in memory, a sliding
  window that slows down password spraying across many accounts from one address).
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

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.audit import record_audit
from core.logging import security_log
from core.settings import get_settings
from models.base import utcnow
from models.enums import Language, UserRole
from models.users import ApiToken, User

SESSION_COOKIE = "deme_session"
CSRF_SEED_COOKIE = "deme_csrf"
CSRF_FORM_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SESSION_TOKEN_NAME = "session"  # ApiToken.name of browser sessions
API_TOKEN_PREFIX = "deme_"
SESSION_LIFETIME = timedelta(hours=12)
# Refreshing last_used_at on every request would turn each page view into a write.
LAST_USED_RESOLUTION = timedelta(minutes=5)

MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)
IP_WINDOW_SECONDS = 15 * 60
IP_MAX_FAILURES = 30

_hasher = PasswordHasher()
# Verifying against a dummy hash when the user does not exist keeps the response time the same,
# so the login form does not reveal which usernames exist.
_DUMMY_HASH = _hasher.hash("deme-dummy-password-for-timing")


# --- passwords ---------------------------------------------------------------------------


class WeakPassword(ValueError):
    """The password does not meet the minimum rules (the message says which)."""


MIN_PASSWORD_LENGTH = 10


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"password must have at least {MIN_PASSWORD_LENGTH} characters")


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
        check_password_rules(password)
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
    """Change a password; every open browser session of that user is revoked."""
    check_password_rules(password)
    user.password_hash = hash_password(password)
    user.failed_logins = 0
    user.locked_until = None
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
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == _digest(raw)))
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


class LoginRefused(Exception):
    """Login failed; ``reason`` is a catalog key, deliberately vague about which part was
    wrong ("invalid" covers unknown user, wrong password and inactive account)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def authenticate(session: Session, *, username: str, password: str, address: str) -> User:
    """Check credentials with throttling; flushes the counters; raises LoginRefused."""
    if address_throttle.blocked(address):
        security_log().warning("login throttled for address")
        raise LoginRefused("throttled")
    # Case-insensitive: the CLI stores usernames as typed, people type them as they like.
    user = session.scalar(
        select(User).where(func.lower(User.username) == username.strip().lower()).limit(1)
    )
    now = utcnow()
    if user is not None and user.locked_until is not None and user.locked_until > now:
        raise LoginRefused("locked")
    if user is None or user.role == UserRole.SERVICE or not user.active:
        verify_password(_DUMMY_HASH, password)
        address_throttle.failed(address)
        raise LoginRefused("invalid")
    if not verify_password(user.password_hash, password):
        address_throttle.failed(address)
        user.failed_logins += 1
        if user.failed_logins >= MAX_FAILED_LOGINS:
            user.locked_until = now + LOCKOUT
            user.failed_logins = 0
            record_audit(
                session,
                action="user.locked",
                actor_label="system",
                object_type="user",
                object_id=user.id,
            )
        session.flush()
        raise LoginRefused("invalid")
    if user.password_hash and _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    session.flush()
    return user
