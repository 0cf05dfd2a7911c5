"""The one settings object of the platform.

Every value comes from a ``DEME_*`` environment variable or an optional ``.env`` file.
Settings are read once per process (``get_settings``) and are frozen afterwards, so a
value seen at start-up is the value used everywhere.
"""

from __future__ import annotations

import base64
import hashlib
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_VAR_DIR = PROJECT_ROOT / "var"

# Development defaults. They are fine on a laptop and refused outside development, because
# anyone who has read this file could decrypt the phone numbers or forge sessions with them.
DEV_SECRET_KEY = "dev-secret-key-not-for-production"
DEV_PII_KEY = base64.urlsafe_b64encode(hashlib.sha256(b"deme-dev-pii-key").digest()).decode()
DEV_BOT_SHARED_SECRET = "dev-bot-shared-secret"


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class SettingsError(RuntimeError):
    """A setting is missing or wrong; the message names the environment variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DEME_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    env: Environment = Environment.DEVELOPMENT
    var_dir: Path = DEFAULT_VAR_DIR
    database_url: str = ""
    redis_url: str | None = None
    public_url: str = "http://localhost:8000"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Resource limits of the web server (core.http_limits): largest request body, time to
    # receive a whole body, time to receive a request's headers.
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    body_timeout_seconds: float = Field(default=15.0, gt=0)
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    # Reverse proxies whose X-Forwarded-For / -Proto are believed (comma-separated addresses
    # or CIDR networks). Empty: none; the client address is the TCP peer, whoever sends what.
    trusted_proxies: str = ""

    secret_key: SecretStr = SecretStr(DEV_SECRET_KEY)
    # Bearer token Prometheus presents for /metrics in production (else an admin's token).
    metrics_token: SecretStr | None = None
    # Comma-separated Fernet keys; the first encrypts, all decrypt (key rotation).
    pii_key: SecretStr = SecretStr(DEV_PII_KEY)

    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_from: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_api_base_url: str | None = None  # tests point the SDK at a local fake provider

    africastalking_username: str | None = None
    africastalking_api_key: SecretStr | None = None
    africastalking_from: str | None = None
    africastalking_ussd_code: str | None = None
    # The USSD callback's secret (``?token=``); ``deme seed`` generates one when unset.
    africastalking_ussd_secret: SecretStr | None = None
    africastalking_api_base_url: str | None = None

    bot: Literal["rasa", "fallback"] = "rasa"
    rasa_url: str = "http://127.0.0.1:5005"
    rasa_timeout_seconds: float = Field(default=8.0, gt=0)
    # A message that waited longer than this for the bot (a backlog) is answered by the
    # fallback classifier instead: the sender hears back, the ticket is flagged for review.
    bot_max_queue_seconds: float = Field(default=10.0, gt=0)
    bot_shared_secret: SecretStr = SecretStr(DEV_BOT_SHARED_SECRET)
    # Rasa's HTTP API token (`rasa run --auth-token`), used to wipe an erased conversation.
    rasa_token: SecretStr | None = None

    default_country: str = "ML"
    flood_limit_per_minute: int = Field(default=20, ge=1)
    outbox_relay_seconds: float = Field(default=5.0, gt=0)
    # Sends waiting for a backoff or a breaker are re-published by a sweep this often.
    outbound_due_seconds: float = Field(default=2.0, gt=0)
    # Broadcasts (gateway.broadcasts): how often beat hands the next batch of each sending
    # broadcast to the outbound path; replies within this many days are tied to it; the
    # estimated price of one SMS part where a channel sets no ``cost_per_part``.
    broadcast_tick_seconds: float = Field(default=2.0, gt=0)
    broadcast_reply_days: int = Field(default=3, ge=1)
    broadcast_cost_per_part: float = Field(default=0.0, ge=0)
    broadcast_currency: str = "XOF"
    # Per-channel circuit breaker (gateway.breaker): this many consecutive transient provider
    # failures (5xx, timeout, refused connection, 429) open it; sends then wait in the
    # database for the cooldown, after which one probe send decides.
    breaker_failures: int = Field(default=5, ge=1)
    breaker_cooldown_seconds: float = Field(default=15.0, gt=0)
    celery_always_eager: bool = False

    # Outgoing email for team alerts (tickets.alerts). Unset host = email channels fail visibly.
    smtp_host: str | None = None
    smtp_port: int | None = Field(default=None, ge=1, le=65535)
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str | None = None
    # None: STARTTLS when the server offers it; True: required; False: never (local relays).
    smtp_starttls: bool | None = None
    smtp_timeout_seconds: float = Field(default=10.0, gt=0)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    # Team alerts: attempts before an alert is marked FAILED, first retry delay (doubles).
    alert_max_attempts: int = Field(default=5, ge=1)
    alert_retry_base_seconds: float = Field(default=30.0, gt=0)
    # Team alerts are written for staff; the console's working language by default.
    alert_language: Literal["fr", "bm", "en"] = "fr"
    # PSEA (sexual exploitation and abuse by aid workers) reports are seen only by the PSEA
    # focal-point team(s) (``teams.handles_psea``). True: protection officers see them too and,
    # while no PSEA team exists, they are routed like other protection tickets. An
    # administrator's decision, for a response without trained PSEA focal points yet.
    psea_share_with_protection: bool = False
    # What the person reporting is promised: a PSEA focal point contacts them within this.
    psea_first_contact_hours: int = Field(default=24, ge=1, le=168)
    # Outbound SMS whose outcome is unknown (provider 5xx / timeout): warn (log + metric) when
    # more than this share of the sends of the last window ended unknown (and at least
    # unknown_send_alert_min of them did).
    unknown_send_alert_share: float = Field(default=0.05, gt=0, le=1)
    unknown_send_window_minutes: int = Field(default=15, ge=1)
    unknown_send_alert_min: int = Field(default=3, ge=1)

    # Surges: this many reports of one category at one cercle/site within the window.
    surge_window_hours: float = Field(default=24.0, gt=0)
    surge_threshold: int = Field(default=3, ge=2)
    # Personal data of tickets closed (or resolved) longer than this is purged.
    retention_days: int = Field(default=365, ge=1)

    @field_validator("public_url", "rasa_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("trusted_proxies")
    @classmethod
    def _check_trusted_proxies(cls, value: str) -> str:
        import ipaddress

        items = [item.strip() for item in value.split(",") if item.strip()]
        for item in items:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError as exc:
                raise ValueError(f"{item!r} is not an IP address or CIDR network") from exc
        return ",".join(items)

    @property
    def trusted_proxy_list(self) -> list[str]:
        return [item for item in self.trusted_proxies.split(",") if item]

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if value and not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must be a sqlite:/// or postgresql:// URL")
        if value.startswith("postgresql://"):
            # SQLAlchemy's default PostgreSQL driver is psycopg2; we ship psycopg 3.
            value = "postgresql+psycopg://" + value.removeprefix("postgresql://")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis:// URL")
        return value

    @model_validator(mode="after")
    def _refuse_development_secrets_outside_development(self) -> Settings:
        if self.env == Environment.DEVELOPMENT or self.env == Environment.TEST:
            return self
        problems: list[str] = []
        if self.secret_key.get_secret_value() in ("", DEV_SECRET_KEY):
            problems.append("DEME_SECRET_KEY is missing or still the development default")
        elif len(self.secret_key.get_secret_value()) < 32:
            problems.append("DEME_SECRET_KEY must be at least 32 characters")
        pii_keys = [key.strip() for key in self.pii_key.get_secret_value().split(",")]
        if not any(pii_keys) or DEV_PII_KEY in pii_keys:
            # In any position: a secondary key still decrypts, so the development key would
            # open every phone number encrypted with it.
            problems.append(
                "DEME_PII_KEY is missing or still the development default (in any position)"
            )
        if self.bot_shared_secret.get_secret_value() in ("", DEV_BOT_SHARED_SECRET):
            problems.append("DEME_BOT_SHARED_SECRET is missing or still the development default")
        if not self.database_url:
            problems.append("DEME_DATABASE_URL must be set in production")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.var_dir / 'deme.sqlite3'}"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    @property
    def twilio_configured(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token)

    @property
    def africastalking_configured(self) -> bool:
        return bool(self.africastalking_username and self.africastalking_api_key)


def load_settings() -> Settings:
    """Read settings from the environment, turning validation errors into a SettingsError
    whose message names each offending DEME_* variable (no stack trace for the user)."""
    try:
        return Settings()
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            location = "".join(str(part) for part in error["loc"])
            variable = f"DEME_{location.upper()}" if location else "settings"
            message = str(error["msg"]).removeprefix("Value error, ")
            lines.append(f"{variable}: {message}")
        raise SettingsError("invalid configuration:\n  " + "\n  ".join(lines)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
