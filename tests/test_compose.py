"""docker-compose.yml is checked against the code, since no Docker engine runs here:
every command exists, every DEME_* variable is one the code reads, required secrets are
marked required, and every long-running service has a healthcheck and ordered start."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.celery_app import ALL_QUEUES, TASK_QUEUES, WORKERS, celery_app
from core.settings import Settings
from deme.cli import app as cli_app
from support import PROJECT_ROOT

COMPOSE = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
PLATFORM_SERVICES = ["migrate", "web", *(spec.name for spec in WORKERS), "beat"]
BOT_SERVICES = ["rasa", "actions"]
REQUIRED_SECRETS = ["DEME_SECRET_KEY", "DEME_PII_KEY", "DEME_BOT_SHARED_SECRET", "DEME_PUBLIC_URL"]
SETTINGS_VARIABLES = {f"DEME_{name.upper()}" for name in Settings.model_fields}


def _command(service: str) -> list[str]:
    command = SERVICES[service]["command"]
    return command if isinstance(command, list) else command.split()


def _environment(service: str) -> dict[str, str]:
    env = SERVICES[service].get("environment", {})
    return {str(k): str(v) for k, v in env.items()}


def _bot_variables() -> set[str]:
    """DEME_* names the bot's code and Rasa config files read."""
    names: set[str] = set()
    for path in (PROJECT_ROOT / "bot").rglob("*"):
        if path.suffix in {".py", ".yml", ".sh"} and "tests" not in path.parts:
            names |= set(re.findall(r"DEME_[A-Z0-9_]+", path.read_text(errors="replace")))
    return names


def test_full_stack_services_exist() -> None:
    assert {"postgres", "redis", *PLATFORM_SERVICES, *BOT_SERVICES} <= set(SERVICES)


@pytest.mark.parametrize("service", PLATFORM_SERVICES)
def test_platform_commands_exist_in_the_code(service: str) -> None:
    command = " ".join(_command(service))
    cli_commands = {
        c.name or c.callback.__name__.replace("_", "-") for c in cli_app.registered_commands
    }  # type: ignore[union-attr]
    for used in re.findall(r"\bdeme ([a-z-]+)", command):
        assert used in cli_commands, f"{service}: `deme {used}` is not a CLI command"
    for target in re.findall(r"-A ([\w.]+):(\w+)", command):
        module = __import__(target[0], fromlist=[target[1]])
        assert hasattr(module, target[1]), f"{service}: {target} not importable"
    assert re.search(r"\bdeme \w|celery -A", command), f"{service}: unexpected command {command}"


@pytest.mark.parametrize("service", PLATFORM_SERVICES)
def test_platform_variables_are_settings(service: str) -> None:
    unknown = {name for name in _environment(service) if name.startswith("DEME_")}
    unknown -= SETTINGS_VARIABLES
    assert not unknown, f"{service} sets variables the settings never read: {sorted(unknown)}"


@pytest.mark.parametrize("service", BOT_SERVICES)
def test_bot_variables_are_read_by_the_bot(service: str) -> None:
    unknown = {name for name in _environment(service) if name.startswith("DEME_")}
    unknown -= _bot_variables()
    assert not unknown, f"{service} sets variables the bot never reads: {sorted(unknown)}"


def test_bot_commands_point_at_files_in_the_repo() -> None:
    rasa = _command("rasa")
    for flag in ("--credentials", "--endpoints"):
        assert (PROJECT_ROOT / "bot" / rasa[rasa.index(flag) + 1]).is_file()
    actions = _command("actions")
    assert (PROJECT_ROOT / "bot" / actions[actions.index("--actions") + 1]).is_dir()
    assert (PROJECT_ROOT / SERVICES["rasa"]["build"] / "Dockerfile").is_file()


@pytest.mark.parametrize("variable", REQUIRED_SECRETS)
def test_required_secrets_are_marked_required(variable: str) -> None:
    text = (PROJECT_ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    assert re.search(r"\$\{" + variable + r":\?[^}]+\}", text), f"{variable} not required"


def test_compose_workers_are_the_topology_declared_in_code() -> None:
    """Compose starts exactly core.celery_app.WORKERS (queues, pool, concurrency), as
    `deme run` does: the bulkheads are the same on both deployments."""
    services = {
        name
        for name, service in SERVICES.items()
        if "celery" in str(service.get("command")) and "worker" in service["command"]
    }
    assert services == {spec.name for spec in WORKERS}
    for spec in WORKERS:
        expected = ["celery", "-A", "core.celery_app:celery_app", *spec.arguments()]
        assert _command(spec.name) == expected, spec.name
    consumed = [queue for spec in WORKERS for queue in spec.queues]
    assert sorted(consumed) == sorted(ALL_QUEUES.split(",")), "each queue: one worker"


def test_deme_run_starts_the_same_topology() -> None:
    from deme.runner import platform_commands

    commands = dict(platform_commands("fallback"))
    for spec in WORKERS:
        command = commands[spec.name]
        assert command[command.index("worker") :][: len(spec.arguments())] == spec.arguments()


def test_every_task_has_a_route_to_a_consumed_queue() -> None:
    celery_app.loader.import_default_modules()
    tasks = {name for name in celery_app.tasks if not name.startswith("celery.")}
    assert tasks == set(TASK_QUEUES), "a task without a route would share the intake queue"
    assert set(TASK_QUEUES.values()) <= set(ALL_QUEUES.split(","))
    scheduled = {entry["task"] for entry in celery_app.conf.beat_schedule.values()}
    # Periodic work on its own queue, except the provider look-ups (with the provider's calls).
    off_periodic = {name for name in scheduled if TASK_QUEUES[name] != "periodic"}
    assert off_periodic == {"gateway.reconcile_unknown"}
    assert TASK_QUEUES["gateway.reconcile_unknown"] == TASK_QUEUES["gateway.send_outbound"]


def test_production_mode_in_compose() -> None:
    assert _environment("web")["DEME_ENV"] == "production"


@pytest.mark.parametrize("service", [s for s in SERVICES if s != "migrate"])
def test_long_running_services_have_healthchecks(service: str) -> None:
    assert "healthcheck" in SERVICES[service]


@pytest.mark.parametrize("service", [*PLATFORM_SERVICES, *BOT_SERVICES])
def test_dependencies_wait_for_health(service: str) -> None:
    depends = SERVICES[service].get("depends_on", {})
    assert isinstance(depends, dict) and depends, f"{service} has no ordered start"
    for dependency, spec in depends.items():
        assert dependency in SERVICES
        assert spec["condition"] in {"service_healthy", "service_completed_successfully"}


def test_dockerfile_builds_what_compose_runs() -> None:
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text(encoding="utf-8")
    for package in ("core", "models", "gateway", "tickets", "ops_console", "bot"):
        assert f"COPY {package} ./{package}" in dockerfile
    assert Path(PROJECT_ROOT / ".dockerignore").is_file()
