#!/usr/bin/env bash
# Run the Deme bot in the foreground: the rasa-sdk action server and the Rasa server, as one
# process group (Ctrl-C / SIGTERM stops both). This is what `make run` calls.
#   DEME_RASA_PORT (5005)  DEME_RASA_HOST (127.0.0.1: the HTTP API has no auth unless
#   DEME_RASA_TOKEN is set)  DEME_ACTIONS_PORT (5055)  DEME_BOT_ENDPOINTS (bot/endpoints.yml;
#   bot/endpoints.redis.yml in production)  DEME_RASA_TOKEN (optional --auth-token for the HTTP
#   API)  DEME_BOT_SHARED_SECRET (required by the deme channel)  DEME_API_URL / DEME_API_TOKEN
#   (platform API used by the actions)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

RASA_PORT="${DEME_RASA_PORT:-5005}"
ACTIONS_PORT="${DEME_ACTIONS_PORT:-5055}"
ENDPOINTS="${DEME_BOT_ENDPOINTS:-$BOT_DIR/endpoints.yml}"
export DEME_ACTION_ENDPOINT_URL="${DEME_ACTION_ENDPOINT_URL:-http://127.0.0.1:$ACTIONS_PORT/webhook}"

if [[ -z "${DEME_BOT_SHARED_SECRET:-}" ]]; then
    echo "warning: DEME_BOT_SHARED_SECRET is not set; the deme channel will refuse every request" >&2
fi

VENV="$(bot_venv)"
MODEL="${DEME_BOT_MODEL:-$("$BOT_DIR/scripts/train_if_changed.sh" | tail -n 1)}"
cd "$BOT_DIR"

pids=()
cleanup() {
    trap - INT TERM EXIT
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

"$VENV/bin/rasa" run actions --actions actions --port "$ACTIONS_PORT" &
pids+=($!)

auth=()
if [[ -n "${DEME_RASA_TOKEN:-}" ]]; then auth=(--auth-token "$DEME_RASA_TOKEN"); fi
"$VENV/bin/rasa" run --model "$MODEL" --enable-api "${auth[@]}" \
    --credentials "$BOT_DIR/credentials.yml" --endpoints "$ENDPOINTS" \
    --interface "${DEME_RASA_HOST:-127.0.0.1}" --port "$RASA_PORT" &
pids+=($!)

echo "deme bot: rasa on :$RASA_PORT (model $(basename "$MODEL")), actions on :$ACTIONS_PORT" >&2
# Stop everything as soon as either process exits.
wait -n
exit_code=$?
echo "deme bot: a process exited ($exit_code); stopping the other" >&2
exit "$exit_code"
