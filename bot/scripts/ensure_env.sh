#!/usr/bin/env bash
# Create (once) the bot's Python 3.10 virtualenv, cached outside the repo and keyed on
# bot/requirements.txt. Prints the venv path as the LAST line of stdout.
#   DEME_CACHE_DIR   cache root (default ~/.cache/deme)
#   DEME_PYTHON310   explicit interpreter to use (optional)
# Exit 3 when no Python 3.10 can be found.
set -euo pipefail

BOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REQ="$BOT_DIR/requirements.txt"
CACHE_DIR="${DEME_CACHE_DIR:-$HOME/.cache/deme}"

req_hash="$(sha256sum "$REQ" | cut -c1-12)"
VENV="$CACHE_DIR/bot-venv-$req_hash"
MARKER="$VENV/.deme-complete"

if [[ -f "$MARKER" && -x "$VENV/bin/python" ]]; then
    echo "$VENV"
    exit 0
fi

is_py310() {
    [[ -n "$1" ]] && "$1" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 10) else 1)' >/dev/null 2>&1
}

find_python310() {
    local cand
    if [[ -n "${DEME_PYTHON310:-}" ]] && is_py310 "$DEME_PYTHON310"; then
        echo "$DEME_PYTHON310"; return 0
    fi
    # python3.10 on PATH may be a pyenv shim that refuses to run: actually execute it.
    if cand="$(command -v python3.10 2>/dev/null)" && is_py310 "$cand"; then
        echo "$cand"; return 0
    fi
    local root=""
    if command -v pyenv >/dev/null 2>&1; then
        root="$(pyenv root 2>/dev/null || true)"
    fi
    root="${root:-${PYENV_ROOT:-$HOME/.pyenv}}"
    for cand in $(ls -d "$root"/versions/3.10.*/bin/python3.10 2>/dev/null | sort -V -r); do
        if is_py310 "$cand"; then echo "$cand"; return 0; fi
    done
    return 1
}

if ! PY="$(find_python310)"; then
    echo "Python 3.10 is required for the Rasa bot; install it (e.g. pyenv install 3.10) or set DEME_BOT=fallback" >&2
    exit 3
fi

mkdir -p "$CACHE_DIR"
# Serialise concurrent callers (make run + make test at once).
exec 9>"$CACHE_DIR/.bot-venv-$req_hash.lock"
if command -v flock >/dev/null 2>&1; then flock 9; fi

if [[ -f "$MARKER" && -x "$VENV/bin/python" ]]; then
    echo "$VENV"
    exit 0
fi

echo "==> Installing Rasa into $VENV (first start, or bot/requirements.txt changed: ~3 min, ~2.7 GB)…" >&2
start=$(date +%s)
if [[ ! -x "$VENV/bin/python" ]]; then
    "$PY" -m venv "$VENV" >&2
fi
"$VENV/bin/python" -m pip install --quiet --upgrade "pip<25" >&2
# Quiet: pip's thousands of progress lines would hide what the start is doing; errors still show.
"$VENV/bin/python" -m pip install --quiet -r "$REQ" >&2
# Sanity check: importing rasa and rasa_sdk must work before the venv counts as complete.
"$VENV/bin/python" -c 'import rasa, rasa_sdk, requests, pytest' >&2
date -u +%Y-%m-%dT%H:%M:%SZ > "$MARKER"
echo "    Rasa installed in $(( $(date +%s) - start )) s" >&2
echo "$VENV"
