#!/usr/bin/env python3
"""Rewrite NLU example files through bot/normalize.py (the function the channel applies at run
time), keeping entity annotations, dropping duplicates inside an intent and reporting examples
that appear under two intents. Idempotent; stdlib only.

    python bot/scripts/normalize_data.py            # rewrite bot/data/nlu/*.yml
    python bot/scripts/normalize_data.py --check    # exit 1 if a file would change
"""

from __future__ import annotations

import argparse
import re
import string
import sys
from pathlib import Path

BOT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BOT_DIR))

from normalize import normalize  # noqa: E402

ANNOTATION_RE = re.compile(r"\[([^\]]+)\](\([^)]+\)|\{[^}]+\})")
EXAMPLE_RE = re.compile(r"^(\s+)- (.*)$")
INTENT_RE = re.compile(r"^- intent:\s*(\S+)")


def _placeholder(i: int) -> str:
    # letters only, so normalize() leaves it alone (no digit split, no repeat collapse)
    return f"zqent{string.ascii_lowercase[i // 26]}{string.ascii_lowercase[i % 26]}zq"


def normalize_example(text: str) -> str:
    annotations: list[tuple[str, str]] = []

    def repl(match: re.Match[str]) -> str:
        annotations.append((match.group(1), match.group(2)))
        return f" {_placeholder(len(annotations) - 1)} "

    masked = ANNOTATION_RE.sub(repl, text)
    out = normalize(masked)
    for i, (inner, label) in enumerate(annotations):
        out = out.replace(_placeholder(i), f"[{normalize(inner)}]{label}", 1)
    return out


def process(path: Path) -> tuple[str, list[str]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    result: list[str] = []
    seen: set[str] = set()
    owner: dict[str, str] = {}
    warnings: list[str] = []
    intent = None
    for line in lines:
        m = INTENT_RE.match(line)
        if m:
            intent = m.group(1)
            seen = set()
            result.append(line)
            continue
        m = EXAMPLE_RE.match(line)
        if m and intent is not None and len(m.group(1)) >= 4:
            example = normalize_example(m.group(2))
            if not example or example in seen:
                continue
            seen.add(example)
            plain = ANNOTATION_RE.sub(lambda a: a.group(1), example)
            if plain in owner and owner[plain] != intent:
                warnings.append(f"{path.name}: '{plain}' under {owner[plain]} and {intent}")
            owner.setdefault(plain, intent)
            # YAML block scalars keep the text verbatim; just keep it on one line.
            result.append(f"{m.group(1)}- {example}")
            continue
        result.append(line)
    return "\n".join(result) + "\n", warnings


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--check", action="store_true")
    parser.add_argument("files", nargs="*", type=Path)
    args = parser.parse_args()
    # eval/heldout_*.yml stay as senders wrote them: evaluate.py normalises them at run time,
    # like the channel does.
    files = args.files or sorted((BOT_DIR / "data" / "nlu").glob("*.yml"))
    changed = []
    for path in files:
        new, warnings = process(path)
        for w in warnings:
            print("WARNING duplicate across intents:", w, file=sys.stderr)
        if new != path.read_text(encoding="utf-8"):
            changed.append(path)
            if not args.check:
                path.write_text(new, encoding="utf-8")
    if args.check and changed:
        print("not normalised:", ", ".join(str(p) for p in changed), file=sys.stderr)
        return 1
    for p in changed:
        print("normalised", p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
