"""Console users, their roles, and API tokens for /api/v1."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, TimestampMixin, str_enum, utcnow
from models.enums import Language, UserRole

# The actor label /api/v1 writes for service tokens (the bot): timelines and the dispatcher's
# link from a conversation turn to the ticket it created or completed (conversation.dispatch).
SERVICE_ACTOR_LABEL = "bot"


class User(TimestampMixin, Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    display_name: Mapped[str] = mapped_column(String(120))
    email: Mapped[str | None] = mapped_column(String(254))
    password_hash: Mapped[str | None] = mapped_column(String(255))  # argon2id; NULL for services
    role: Mapped[UserRole] = mapped_column(str_enum(UserRole))
    language: Mapped[Language] = mapped_column(str_enum(Language, 8), default=Language.FRENCH)
    active: Mapped[bool] = mapped_column(default=True)
    last_login_at: Mapped[datetime | None]
    # Unused since login backoff moved to ``login_backoffs`` (kept so old rows still load).
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None]

    tokens: Mapped[list[ApiToken]] = relationship(back_populates="user")


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(80))
    # SHA-256 of the token: the token itself is shown once and never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # shown in the console to recognise it
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(back_populates="tokens")


class LoginBackoff(Base):
    """Failed logins for one (account, client address) pair: each failure past the free ones
    doubles the wait before that pair may try again. Keyed by a SHA-256 of both, so neither
    the typed username nor the address is stored; in the database so it survives restarts
    and is shared by every web process (Redis is absent in ``make run``)."""

    __tablename__ = "login_backoffs"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    # SHA-256 of the lower-cased username alone: lets an admin clear every pair of a user.
    account_key: Mapped[str] = mapped_column(String(64), index=True)
    failures: Mapped[int] = mapped_column(default=0)
    last_failed_at: Mapped[datetime] = mapped_column(index=True)
    blocked_until: Mapped[datetime | None]


class SavedView(Base):
    """A queue filter and sort a console user named ("urgent WASH in Gao"): the query string
    of the queue page (filters and sort only; a phone filter is kept as its sealed token)."""

    __tablename__ = "saved_views"
    __table_args__ = (UniqueConstraint("user_id", "name", name="uq_saved_views_user_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(80))
    query: Mapped[str] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
