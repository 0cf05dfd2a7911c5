#!/usr/bin/env bash
# Train the bot only when config.yml, domain.yml, data/** or requirements.txt changed.
# The model is cached at ${DEME_CACHE_DIR:-~/.cache/deme}/bot-models/deme-<hash12>.tar.gz;
# its path is printed as the LAST line of stdout (logs go to stderr).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

VENV="$(bot_venv)"
PY="$VENV/bin/python"

# Generated inputs first (cheap, stdlib): the lookup table follows the gazetteer file.
if [[ -f "$ROOT_DIR/tickets/data/places.csv" ]]; then
    "$PY" "$BOT_DIR/scripts/gen_lookups.py" >&2
fi
"$PY" "$BOT_DIR/scripts/normalize_data.py" --check >&2 || {
    echo "training data is not normalised: run $BOT_DIR/scripts/normalize_data.py" >&2
    exit 1
}

HASH="$(bot_model_hash)"
NAME="deme-$HASH"
MODELS="$CACHE_DIR/bot-models"
MODEL="$MODELS/$NAME.tar.gz"
mkdir -p "$MODELS" "$RASA_CACHE_DIRECTORY"

if [[ ! -f "$MODEL" ]]; then
    exec 9>"$MODELS/.train.lock"
    if command -v flock >/dev/null 2>&1; then flock 9; fi
    if [[ ! -f "$MODEL" ]]; then
        TMP="$(mktemp -d "$MODELS/.train-XXXXXX")"
        trap 'rm -rf "$TMP"' EXIT
        LOG="$MODELS/$NAME.train.log"
        echo "==> Training the bot's model $NAME (first start, or its data changed: ~3.5 min on 2 cores; log: $LOG)…" >&2
        start=$(date +%s)
        # Rasa's training output goes to the log (hundreds of progress lines); on failure
        # its end is shown here.
        if ! (
            cd "$BOT_DIR"
            "$VENV/bin/rasa" train --config config.yml --domain domain.yml --data data \
                --out "$TMP" --fixed-model-name "$NAME"
        ) >"$LOG" 2>&1; then
            tail -n 40 "$LOG" >&2
            echo "training failed: see $LOG" >&2
            exit 1
        fi
        mv "$TMP/$NAME.tar.gz" "$MODEL.partial"
        mv "$MODEL.partial" "$MODEL"
        echo "    trained $NAME in $(( $(date +%s) - start )) s" >&2
    fi
fi
echo "$MODEL"
