"""Every import arrow between the platform's packages points down (docs/architecture.md).

Read from the source with ``ast`` (lazy imports inside functions count too), so the check
needs nothing running and fails on the line that points up.
"""

from __future__ import annotations

import ast
from pathlib import Path

from core.settings import PROJECT_ROOT

# Top to bottom; packages in one layer are independent of each other. ``deme`` is the
# composition root (web app, CLI, runner, seed) and alone may import everything; ``bot`` is
# the Rasa project, whose fallback classifier the platform's conversation step reuses.
LAYERS: list[set[str]] = [
    {"deme"},
    {"ops_console", "conversation"},
    {"gateway", "bot"},
    {"tickets"},
    {"models"},
    {"core"},
]

# Known upward arrows, each with why it is still there. The test fails when one disappears,
# so this list only shrinks.
KNOWN_UPWARD: dict[tuple[str, str], str] = {
    # Ticket notifications and SMS alerts queue their text through the gateway's one outbound
    # path (channel choice, GSM-7, delivery tracking); lazily imported. Moving queue_sms below
    # tickets is the way out.
    ("tickets/notifications.py", "gateway.outbound"): "queue_sms",
    ("tickets/alerts.py", "gateway.outbound"): "queue_sms",
}

LAYER_OF = {package: rank for rank, layer in enumerate(LAYERS) for package in layer}


def _imports(path: Path) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def _platform_files() -> list[Path]:
    files: list[Path] = []
    for package in LAYER_OF:
        root = PROJECT_ROOT / package
        files.extend(p for p in root.rglob("*.py") if ".rasa" not in p.parts)
    return files


def _arrows() -> list[tuple[str, int, str, str, str]]:
    """(file, line, imported module, from package, to package) across packages."""
    arrows = []
    for path in _platform_files():
        rel = path.relative_to(PROJECT_ROOT).as_posix()
        source = rel.split("/", 1)[0]
        for line, module in _imports(path):
            target = module.split(".", 1)[0]
            if target in LAYER_OF and target != source:
                arrows.append((rel, line, module, source, target))
    return arrows


def test_every_import_between_packages_points_down() -> None:
    upward = []
    seen_known = set()
    for rel, line, module, source, target in _arrows():
        if LAYER_OF[target] > LAYER_OF[source]:
            continue
        key = (rel, ".".join(module.split(".")[:2]))
        if key in KNOWN_UPWARD:
            seen_known.add(key)
            continue
        upward.append(f"{rel}:{line} imports {module} ({source} may not import {target})")
    assert upward == [], "\n".join(upward)
    assert seen_known == set(KNOWN_UPWARD), (
        f"gone, remove from KNOWN_UPWARD: {sorted(set(KNOWN_UPWARD) - seen_known)}"
    )


def test_every_package_is_in_a_layer() -> None:
    """A new top-level package must be placed in LAYERS (and docs/architecture.md)."""
    packages = {
        p.parent.name
        for p in PROJECT_ROOT.glob("*/__init__.py")
        if p.parent.name not in {"tests", "bench", "scripts"}
    }
    assert packages == set(LAYER_OF)


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The reader finds lazy imports inside functions, the kind most likely to point up."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from ops_console.auth import hash_password\n")
    assert _imports(module) == [(2, "ops_console.auth")]


def test_core_languages_are_the_models_languages() -> None:
    """core.i18n cannot import models.enums.Language (core is below models): same codes."""
    from core.i18n import FALLBACK_LANGUAGE, LANGUAGES, normalize_language
    from models.enums import Language

    assert tuple(language.value for language in Language) == LANGUAGES
    assert Language.FRENCH.value == FALLBACK_LANGUAGE
    assert normalize_language(Language.BAMBARA) == "bm"
    assert normalize_language("EN") == "en"
    assert normalize_language("xx") == "fr"
