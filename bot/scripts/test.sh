#!/usr/bin/env bash
# The bot's test suite (what `make test` calls for the bot), in the bot's own venv:
#   generated files up to date, training data normalised, `rasa data validate`, action unit
#   tests (pytest), conversation tests (rasa test core) and the held-out NLU evaluation.
#   DEME_BOT_SKIP_EVAL=1 skips the held-out evaluation (it loads the model: ~1 min).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

VENV="$(bot_venv)"
PY="$VENV/bin/python"
cd "$BOT_DIR"

echo "== generated files and normalisation" >&2
"$PY" scripts/gen_lookups.py --check
"$PY" scripts/normalize_data.py --check

echo "== rasa data validate" >&2
"$VENV/bin/rasa" data validate --domain domain.yml --data data --config config.yml >&2

echo "== model" >&2
MODEL="$("$BOT_DIR/scripts/train_if_changed.sh" | tail -n 1)"

echo "== conversation tests" >&2
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
"$VENV/bin/rasa" test core --model "$MODEL" --stories tests/test_stories.yml \
    --fail-on-prediction-errors --out "$OUT" >&2
echo "conversation tests passed" >&2

if [[ "${DEME_BOT_SKIP_EVAL:-0}" != "1" ]]; then
    echo "== held-out NLU evaluation" >&2
    # Regression floors (the targets are 0.90 fr / 0.85 bm; see eval/results.md)
    "$PY" scripts/evaluate.py --model "$MODEL" --min-fr 0.85 --min-bm 0.80 2>/dev/null
fi

echo "== action unit tests" >&2
"$PY" -m pytest tests -q
