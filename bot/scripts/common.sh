# Shared settings for the bot's scripts (sourced, not executed).
BOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOT_DIR="$(cd "$BOT_DIR/.." && pwd)"
CACHE_DIR="${DEME_CACHE_DIR:-$HOME/.cache/deme}"
export RASA_CACHE_DIRECTORY="${RASA_CACHE_DIRECTORY:-$CACHE_DIR/rasa-cache}"
export SQLALCHEMY_SILENCE_UBER_WARNING=1
export RASA_TELEMETRY_ENABLED=false
export PYTHONHASHSEED=0
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
export TF_DETERMINISTIC_OPS=1
# `bot.normalize` (project root) and `normalize` / `actions` / `channels` (bot dir) importable
export PYTHONPATH="$ROOT_DIR:$BOT_DIR${PYTHONPATH:+:$PYTHONPATH}"

bot_venv() {
    # ensure_env.sh prints the venv path as its last stdout line
    "$BOT_DIR/scripts/ensure_env.sh" | tail -n 1
}

bot_model_hash() {
    # config + domain + all training data + the environment they are trained with
    (
        cd "$BOT_DIR"
        sha256sum requirements.txt config.yml domain.yml
        find data -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
    ) | sha256sum | cut -c1-12
}
