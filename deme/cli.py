"""The ``deme`` command: migrate, seed, users and tokens, checks, and running the platform."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from core.settings import PROJECT_ROOT, SettingsError, get_settings

app = typer.Typer(
    name="deme",
    help="Deme: SMS/USSD feedback and hotline platform.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _say(message: str) -> None:
    typer.echo(message, err=False)


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def alembic_config() -> object:
    from alembic.config import Config

    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "models" / "migrations"))
    config.attributes["configure_logging"] = False
    return config


@app.command()
def migrate(
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
    downgrade: Annotated[bool, typer.Option(help="Downgrade to --revision.")] = False,
) -> None:
    """Bring the database schema to the latest (or given) revision."""
    from alembic import command

    settings = get_settings()
    _say(f"Migrating {_describe_database(settings.effective_database_url)} to {revision}…")
    config = alembic_config()
    if downgrade:
        command.downgrade(config, revision)  # type: ignore[arg-type]
    else:
        command.upgrade(config, revision)  # type: ignore[arg-type]
    _say("Database schema is up to date.")


@app.command()
def seed(
    demo: Annotated[bool, typer.Option(help="Also create demo teams and routing rules.")] = True,
) -> None:
    """Load the gazetteer, demo teams and rules, channels from settings, the first admin."""
    from core.db import session_scope
    from deme.seed import run_seed

    settings = get_settings()
    with session_scope() as session:
        report = run_seed(session, settings, _say, demo=demo)
    if report.admin_password:
        password_file = settings.var_dir / "first-admin-password.txt"
        password_file.parent.mkdir(parents=True, exist_ok=True)
        password_file.write_text(report.admin_password + "\n", encoding="utf-8")
        password_file.chmod(0o600)
        _say(f"First admin: username 'admin', password {report.admin_password}")
        _say(f"(also saved in {password_file}; change it after the first login)")
    for name, secret in report.new_ussd_secrets:
        _show_ussd_secret(name, secret)
    _say("Seed complete.")


def _ussd_callback(name: str, secret: str) -> str:
    """How the aggregator of channel ``name`` must call the USSD webhook."""
    from sqlalchemy import select

    from core.db import session_scope
    from models.channels import Channel
    from models.enums import ChannelType

    base = get_settings().public_url.rstrip("/")
    with session_scope() as session:
        channel = session.scalar(select(Channel).where(Channel.name == name))
        if channel is not None and channel.type == ChannelType.HTTP:
            return f"{base}/webhooks/http/{channel.id}/ussd with header X-Deme-Token: {secret}"
    return f"{base}/webhooks/africastalking/ussd?token={secret}"


def _show_ussd_secret(name: str, secret: str) -> None:
    # Printed to the terminal once, never logged: the callback URL carries it.
    _say(f"USSD channel '{name}': new caller secret (shown once): {secret}")
    _say(f"  register this callback with the aggregator: {_ussd_callback(name, secret)}")


@app.command("channel-secret")
def channel_secret(
    name: Annotated[str, typer.Argument(help="The channel's name (see `deme check`).")],
    set_value: Annotated[
        str | None, typer.Option("--set", help="Use this secret instead of a generated one.")
    ] = None,
) -> None:
    """Give a USSD channel a new caller secret (generated, or --set) and show it once."""
    import secrets as token_source

    from sqlalchemy import select

    from core.db import session_scope
    from deme.seed import set_ussd_secret
    from gateway.channels.auth import USSD_CHANNEL_TYPES
    from models.channels import Channel

    secret = set_value if set_value is not None else token_source.token_urlsafe(24)
    if len(secret) < 16 or any(ch.isspace() for ch in secret):
        raise _fail("a USSD secret needs at least 16 characters and no spaces")
    with session_scope() as session:
        channel = session.scalar(select(Channel).where(Channel.name == name))
        if channel is None:
            raise _fail(f"no channel named {name!r}")
        if str(channel.type) not in USSD_CHANNEL_TYPES:
            raise _fail(f"channel {name!r} ({channel.type}) does not serve USSD")
        set_ussd_secret(channel, secret)
    _show_ussd_secret(name, secret)
    _say("The web app picks it up within 30 seconds; the old secret stops working then.")


ROLE_CHOICES = ["admin", "supervisor", "operator", "protection_officer", "team_member", "service"]


@app.command("create-user")
def create_user(
    username: Annotated[str, typer.Argument(help="Login name (letters, digits, . _ -).")],
    role: Annotated[str, typer.Option(help=f"One of: {', '.join(ROLE_CHOICES)}.")],
    display_name: Annotated[str | None, typer.Option(help="Name shown in the console.")] = None,
    team: Annotated[str | None, typer.Option(help="Team slug to join (team members).")] = None,
    password: Annotated[
        str | None, typer.Option(help="Password (generated and printed when omitted).")
    ] = None,
    reset_password: Annotated[
        bool, typer.Option(help="If the user exists, set a new password.")
    ] = False,
) -> None:
    """Create a console user (or reset an existing user's password)."""
    import re
    import secrets

    from sqlalchemy import select

    from core.db import session_scope
    from models.audit import record_audit
    from models.enums import UserRole
    from models.teams import Team, TeamMember
    from models.users import User
    from ops_console.auth import WeakPassword, check_password_rules, clear_backoff, hash_password

    if role not in ROLE_CHOICES:
        raise _fail(f"--role must be one of {', '.join(ROLE_CHOICES)}, not {role!r}", 2)
    if not re.fullmatch(r"[A-Za-z0-9._-]{2,80}", username):
        raise _fail("USERNAME must be 2–80 letters, digits, '.', '_' or '-'", 2)
    if password is not None:
        try:
            check_password_rules(password, username=username)
        except WeakPassword as weak:
            raise _fail(f"--password: {weak}", 2) from None
    chosen = password or secrets.token_urlsafe(12)
    with session_scope() as session:
        user = session.scalar(select(User).where(User.username == username))
        if user is not None and not reset_password:
            raise _fail(f"user {username!r} already exists (use --reset-password)", 1)
        if user is None:
            user = User(
                username=username,
                display_name=display_name or username,
                role=UserRole(role),
                password_hash=None if role == "service" else hash_password(chosen),
            )
            session.add(user)
            action = "user.created"
        else:
            user.password_hash = hash_password(chosen)
            clear_backoff(session, user.username)
            action = "user.password_reset"
        session.flush()
        if team:
            team_row = session.scalar(select(Team).where(Team.slug == team))
            if team_row is None:
                raise _fail(f"--team {team!r}: no team with that slug", 2)
            session.add(TeamMember(team_id=team_row.id, user_id=user.id))
        record_audit(
            session, action=action, actor_label="cli", object_type="user", object_id=user.id
        )
    if role == "service":
        _say(f"Service user {username!r} ready; create a token with `deme create-token`.")
    elif password is None:
        _say(f"User {username!r} ({role}) ready. Password: {chosen}")
    else:
        _say(f"User {username!r} ({role}) ready.")


@app.command("create-token")
def create_token(
    username: Annotated[str, typer.Argument(help="The user the token acts as.")],
    name: Annotated[str, typer.Option(help="What the token is for.")] = "cli",
) -> None:
    """Print a new bearer token for /api/v1 (shown once, stored hashed)."""
    from sqlalchemy import select

    from core.db import session_scope
    from models.audit import record_audit
    from models.users import User
    from ops_console.auth import issue_api_token

    with session_scope() as session:
        user = session.scalar(select(User).where(User.username == username))
        if user is None or not user.active:
            raise _fail(f"no active user {username!r} (create it with `deme create-user`)", 1)
        token = issue_api_token(session, user, name)
        record_audit(
            session,
            action="api_token.created",
            actor_label="cli",
            object_type="user",
            object_id=user.id,
            name=name,
        )
    _say(token)


@app.command("generate-key")
def generate_key() -> None:
    """Print a new key for DEME_PII_KEY (or DEME_SECRET_KEY)."""
    from core.crypto import generate_key as new_key

    _say(new_key())


@app.command("rotate-keys")
def rotate_keys() -> None:
    """Re-encrypt everything with the first DEME_PII_KEY and re-key the lookup hashes."""
    from core.crypto import validate_pii_key
    from core.db import session_scope
    from models.audit import record_audit
    from models.keyrotation import rotate_keys as rotate

    validate_pii_key()
    with session_scope() as session:
        counts = rotate(session)
        record_audit(session, action="pii_key.rotated", actor_label="cli", counts=counts)
    for name, count in counts.items():
        _say(f"{name:>28}: {count}")
    _say("Every encrypted value now uses the first key; the old keys can be removed.")


@app.command()
def check() -> None:
    """Say what is configured and what is reachable."""
    from core.crypto import validate_pii_key
    from deme.health import readiness

    settings = get_settings()
    validate_pii_key()
    rows = [
        ("environment", settings.env.value),
        ("database", _describe_database(settings.effective_database_url)),
        (
            "broker",
            "redis " + _hide_password(settings.redis_url)
            if settings.redis_url
            else f"embedded (valkey, started by deme run; {settings.var_dir / 'broker'})",
        ),
        ("public URL", settings.public_url),
        ("bot", f"{settings.bot} ({settings.rasa_url})" if settings.bot == "rasa" else "fallback"),
        ("twilio", "configured" if settings.twilio_configured else "not configured"),
        (
            "africa's talking",
            "configured" if settings.africastalking_configured else "not configured",
        ),
    ]
    for label, value in rows:
        _say(f"{label:>17}: {value}")
    failures = 0
    for name, reason in readiness(settings).items():
        status = "ok" if reason is None else f"NOT REACHABLE — {reason}"
        failures += reason is not None
        _say(f"{name:>17}: {status}")
    unsafe = _unauthenticated_ussd_channels()
    if unsafe:
        failures += 1
        _say(
            f"{'ussd callers':>17}: NOT AUTHENTICATED on {', '.join(unsafe)}"
            " — deme channel-secret NAME"
        )
    if failures:
        raise typer.Exit(1)


def _unauthenticated_ussd_channels() -> list[str]:
    from sqlalchemy.exc import SQLAlchemyError

    from core.db import session_scope
    from gateway.channels.auth import unauthenticated_ussd_channels

    try:
        with session_scope() as session:
            return unauthenticated_ussd_channels(session)
    except SQLAlchemyError:
        return []  # the database line above already says it is unreachable


@app.command()
def web(
    reload: Annotated[bool, typer.Option(help="Reload on code changes (development).")] = False,
    workers: Annotated[int, typer.Option(min=1, max=32)] = 1,
    fd: Annotated[
        int | None,
        typer.Option(help="Serve an already bound socket (deme run keeps it across restarts)."),
    ] = None,
) -> None:
    """Serve the web app (webhooks, console, API) with uvicorn on DEME_HOST:DEME_PORT."""
    import uvicorn

    from core.http_limits import uvicorn_options
    from core.logging import install_redaction

    install_redaction()
    options = uvicorn_options()
    if fd is not None and workers == 1 and not reload:
        # deme run's shared socket: a graceful restart must not reset a connection.
        from deme.webserver import DrainingServer

        DrainingServer(uvicorn.Config("deme.asgi:app", fd=fd, **options)).run()
        return
    if fd is not None:
        options["fd"] = fd
    uvicorn.run("deme.asgi:app", reload=reload, workers=workers, **options)


@app.command()
def run(
    bot: Annotated[str | None, typer.Option(help="rasa or fallback (default: DEME_BOT).")] = None,
) -> None:
    """Start web app, worker and beat (and the bot) as one process group; Ctrl-C stops all."""
    from deme.runner import run_platform

    raise typer.Exit(run_platform(bot_mode=bot))


def _describe_database(url: str) -> str:
    if url.startswith("sqlite"):
        return f"SQLite file {Path(url.split(':///', 1)[-1])}"
    return "PostgreSQL " + _hide_password(url)


def _hide_password(url: str | None) -> str:
    if not url:
        return ""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


def main() -> None:
    try:
        app()
    except SettingsError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
