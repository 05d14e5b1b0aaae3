#!/usr/bin/env bash
# The performance table of docs/PERFORMANCE.md, in one run: builds release, starts the bare axum
# ceiling (examples/bare_axum.rs) and keygate on SQLite and on Postgres at the default log
# level, seeds an agent and a member key, drives load with wrk and prints every ratio beside its
# absolute figures.
#   bench/run.sh                                                              # SQLite only
#   BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres bench/run.sh   # and Postgres
# Knobs: DURATION (10s per measurement), CONNECTIONS (64), MODERATE (4 connections, for p99),
# ROUNDS (100 revocations for the second-instance lag).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
MODERATE=${MODERATE:-4}
ROUNDS=${ROUNDS:-100}
TOKEN=bench-bootstrap-token-0123456789
TARGET=${CARGO_TARGET_DIR:-target}/release

command -v wrk >/dev/null || apt-get install -y wrk >/dev/null
cargo build --release --quiet --bin keygate --example bare_axum --example revocation_lag

pids=()
dirs=()
databases=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for dir in "${dirs[@]}"; do rm -rf "$dir"; done
    for db in "${databases[@]}"; do
        psql -q "$BENCH_POSTGRES_URL" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"
    done
}
trap cleanup EXIT

wait_ready() { for _ in $(seq 1 100); do curl -sf "$1/healthz" >/dev/null && return; sleep 0.1; done; exit 1; }

# keygate on port $1 with database URL $2 (empty: SQLite in its data dir).
start_keygate() {
    local dir
    dir=$(mktemp -d)
    dirs+=("$dir")
    env KEYGATE_LISTEN=127.0.0.1:$1 KEYGATE_DATA_DIR="$dir" KEYGATE_BOOTSTRAP_TOKEN=$TOKEN \
        ${2:+KEYGATE_DATABASE_URL=$2} KEYGATE_VERIFY_FAILURES_PER_MINUTE=100000000 \
        "$TARGET/keygate" >/dev/null 2>&1 &
    pids+=($!)
    wait_ready "http://127.0.0.1:$1"
}

# wrk against $1 with $2 connections (and the verify script when $3 is a key): "req/s p50 p99" in ms.
measure() {
    local args=(-t1 -c"$2" -d"$DURATION" --latency)
    [ -z "${3:-}" ] || args+=(-s bench/verify.lua)
    VERIFY_TOKEN=${MEMBER:-} VERIFY_BODY="{\"key\":\"${3:-}\"}" wrk "${args[@]}" "$1" | awk '
        function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
        /^Requests\/sec/ { rps = $2 }
        $1 == "50%" { p50 = ms($2) }
        $1 == "99%" { p99 = ms($2) }
        /Non-2xx/ { print "non-2xx answers: " $0 > "/dev/stderr" }
        END { printf "%.0f %.2f %.2f\n", rps, p50, p99 }'
}

json_field() { sed "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

"$TARGET/examples/bare_axum" 127.0.0.1:8198 &
pids+=($!)
wait_ready http://127.0.0.1:8198
read -r bare_rps _ _ < <(measure http://127.0.0.1:8198/healthz "$CONNECTIONS")

echo "keygate $("$TARGET/keygate" --version), $(nproc) cores, wrk 1 thread, $CONNECTIONS connections, $DURATION per measurement"
echo "bare axum /healthz: $bare_rps req/s"
echo
echo "| database | 1. healthz ÷ bare (≥ 0.8) | 2. verify ÷ healthz (≥ 0.8) | 3. verify p99 ÷ healthz p99 at $MODERATE conns (≤ 1.5) | healthz req/s | verify req/s | healthz p50/p99 ms | verify p50/p99 ms (at $MODERATE) |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"

backends=(sqlite)
[ -z "${BENCH_POSTGRES_URL:-}" ] || backends+=(postgres)
port=8200
for backend in "${backends[@]}"; do
    url=""
    if [ "$backend" = postgres ]; then
        db="keygate_bench_$$"
        databases+=("$db")
        psql -q "$BENCH_POSTGRES_URL" -c "CREATE DATABASE $db"
        url="${BENCH_POSTGRES_URL%/*}/$db"
    fi
    start_keygate $port "$url"
    base=http://127.0.0.1:$port
    dsn=$(curl -sf "$base/agents" -H "Authorization: Bearer $TOKEN" -d '{"name":"bench"}' | json_field token)
    MEMBER=$(curl -sf "$base/apikeys" -H "Authorization: Bearer $TOKEN" -d '{"name":"bench","role":"member"}' | json_field key)
    read -r health_rps _ _ < <(measure "$base/healthz" "$CONNECTIONS")
    read -r verify_rps _ _ < <(measure "$base/verify" "$CONNECTIONS" "$dsn")
    read -r _ health_p50 health_p99 < <(measure "$base/healthz" "$MODERATE")
    read -r _ verify_p50 verify_p99 < <(measure "$base/verify" "$MODERATE" "$dsn")
    echo "| $backend | $(ratio "$health_rps" "$bare_rps") | $(ratio "$verify_rps" "$health_rps") | $(ratio "$verify_p99" "$health_p99") | $health_rps | $verify_rps | $health_p50 / $health_p99 | $verify_p50 / $verify_p99 |"
    if [ "$backend" = postgres ]; then
        second=$((port + 1))
        start_keygate $second "$url"
        lag=$("$TARGET/examples/revocation_lag" "$base" "http://127.0.0.1:$second" "$TOKEN" "$ROUNDS")
    fi
    port=$((port + 10))
done
echo
echo "8. ${lag:-revocation lag: needs BENCH_POSTGRES_URL} (goal: max < 1000 ms)"
