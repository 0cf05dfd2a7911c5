#!/usr/bin/env bash
# Make sure PostgreSQL and Redis answer on their default local ports, starting them when they
# are installed but stopped. Says clearly what is missing otherwise. Used by `make test`.
set -uo pipefail

PG_HOST="${DEME_TEST_PG_HOST:-127.0.0.1}"
PG_PORT="${DEME_TEST_PG_PORT:-5432}"
REDIS_PORT="${DEME_TEST_REDIS_PORT:-6379}"
missing=0

pg_up() {
    if command -v pg_isready >/dev/null 2>&1; then
        pg_isready -q -h "$PG_HOST" -p "$PG_PORT"
    else
        (exec 3<>"/dev/tcp/$PG_HOST/$PG_PORT") 2>/dev/null
    fi
}

redis_up() {
    if command -v redis-cli >/dev/null 2>&1; then
        [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = "PONG" ]
    else
        (exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT") 2>/dev/null
    fi
}

wait_for() {  # wait_for <check-function> <seconds>
    local i
    for ((i = 0; i < $2 * 4; i++)); do
        "$1" && return 0
        sleep 0.25
    done
    return 1
}

if pg_up; then
    echo "PostgreSQL: up on $PG_HOST:$PG_PORT"
elif command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    version="$(ls /etc/postgresql | sort -V | tail -n 1)"
    echo "PostgreSQL: stopped, starting cluster $version/main…"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    if wait_for pg_up 30; then echo "PostgreSQL: started"; else
        echo "PostgreSQL: could not be started (see /var/log/postgresql)" >&2; missing=1; fi
else
    echo "PostgreSQL is not running on $PG_HOST:$PG_PORT and is not installed here." >&2
    echo "  Install it (Debian: apt-get install postgresql) or point DEME_TEST_PG_ADMIN_URL" >&2
    echo "  at a server where user postgres may create databases." >&2
    missing=1
fi

if redis_up; then
    echo "Redis: up on 127.0.0.1:$REDIS_PORT"
elif command -v redis-server >/dev/null 2>&1; then
    echo "Redis: stopped, starting redis-server…"
    mkdir -p /tmp/deme-redis
    redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" \
        --appendonly no --dir /tmp/deme-redis --logfile /tmp/deme-redis/redis.log || true
    if wait_for redis_up 15; then echo "Redis: started"; else
        echo "Redis: could not be started (see /tmp/deme-redis/redis.log)" >&2; missing=1; fi
else
    echo "Redis is not running on 127.0.0.1:$REDIS_PORT and is not installed here." >&2
    echo "  Install it (Debian: apt-get install redis-server)." >&2
    missing=1
fi

exit "$missing"
