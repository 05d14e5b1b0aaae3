#!/usr/bin/env bash
# The performance tables of docs/PERFORMANCE.md, in one run: builds release, starts the bare axum
# ceiling (examples/bare_axum.rs) and keygate on SQLite and on Postgres at the default log
# level, seeds an agent and a member key, drives load with wrk and prints every ratio beside its
# absolute figures. For ratios 4-7 it also starts a second keygate on the same database with its
# cache off (every verify a miss), measures the database's own point-lookup and insert rates
# (examples/db_baseline.rs, same pool size and concurrency), and seeds agents straight into the
# database (bench/seed.sh) to compare 1,000 keys with 1,000,000.
#   bench/run.sh                                                              # SQLite only
#   BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres bench/run.sh   # and Postgres
# Knobs: DURATION (10s per measurement), CONNECTIONS (64), WRK_THREADS (2: one wrk thread cannot
# load even bare axum to its limit on 2 cores, and a ceiling that measures the client is none),
# TURNS (3 interleaved turns of bare axum and keygate for ratios 1, 2 and 2b), MODERATE (4
# connections, for p99),
# ROUNDS (100 revocations for the second-instance lag); BASELINE (another keygate binary to
# compare the hot path with, in turns: ROUNDS_AB turns, 3), OVERHEAD_ONLY (stop after that).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
TURNS=${TURNS:-3}
WRK_THREADS=${WRK_THREADS:-2}
MODERATE=${MODERATE:-4}
ROUNDS=${ROUNDS:-100}
MANY=${MANY:-1000000}
TOKEN=bench-bootstrap-token-0123456789
TARGET=${CARGO_TARGET_DIR:-target}/release

command -v wrk >/dev/null || apt-get install -y wrk >/dev/null
cargo build --release --quiet --bin keygate --example bare_axum --example revocation_lag \
    --example db_baseline

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

# Every instance shares one data directory, hence one server key, as replicas must: an
# instance with another key refuses a database whose sealed rows it cannot open.
data_dir=$(mktemp -d)
dirs+=("$data_dir")

# keygate on port $1 with database URL $2 and a verification cache of $3 entries (default
# 100000; 0 turns it off); the binary $4 (default: this build) with data directory $5.
start_keygate() {
    env KEYGATE_LISTEN=127.0.0.1:$1 KEYGATE_DATA_DIR="${5:-$data_dir}" KEYGATE_BOOTSTRAP_TOKEN=$TOKEN \
        KEYGATE_DATABASE_URL="$2" KEYGATE_VERIFY_FAILURES_PER_MINUTE=100000000 \
        KEYGATE_VERIFY_CACHE_CAPACITY="${3:-100000}" "${4:-$TARGET/keygate}" >/dev/null 2>&1 &
    pids+=($!)
    wait_ready "http://127.0.0.1:$1"
}

# wrk against $1 with $2 connections: "req/s p50 p99" in ms. With a key as $3, POST /verify it;
# with `create`, POST /agents with new names; with `list`, GET with the admin key.
measure() {
    local args=(-t"$WRK_THREADS" -c"$2" -d"$DURATION" --latency)
    case "${3:-}" in
    "") ;;
    create) args+=(-s bench/create.lua) ;;
    list) args+=(-H "Authorization: Bearer $TOKEN") ;;
    *) args+=(-s bench/verify.lua) ;;
    esac
    CREATE_TOKEN=$TOKEN CREATE_PREFIX="bench-$RANDOM" \
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

echo "keygate $("$TARGET/keygate" --version), $(nproc) cores, wrk $WRK_THREADS threads, $CONNECTIONS connections, $DURATION per measurement"

# A new database for $1 (sqlite or postgres), its URL in $url (not echoed: the cleanup's lists
# must grow in this shell).
new_database() {
    if [ "$1" = postgres ]; then
        local db="keygate_bench_${$}_$RANDOM"
        databases+=("$db")
        psql -q "$BENCH_POSTGRES_URL" -c "CREATE DATABASE $db"
        url="${BENCH_POSTGRES_URL%/*}/$db"
    else
        local dir
        dir=$(mktemp -d)
        dirs+=("$dir")
        url="sqlite://$dir/keygate.db"
    fi
}

backends=(sqlite)
[ -z "${BENCH_POSTGRES_URL:-}" ] || backends+=(postgres)

# 9. With BASELINE=<another keygate binary> (e.g. a build from before the metrics), the hot
# path of this build beside it: each on a database of its own, measured in turns, ROUNDS_AB
# times each, so that whatever else the machine does weighs on both alike.
if [ -n "${BASELINE:-}" ]; then
    echo "9. this build ÷ $BASELINE ($("$BASELINE" --version)), turns of $DURATION, $CONNECTIONS connections"
    echo
    echo "| database | healthz, this ÷ baseline | cached verify, this ÷ baseline | healthz req/s, this / baseline (per turn) | verify req/s, this / baseline (per turn) |"
    echo "|---|---:|---:|---|---|"
    port=8300
    declare -A dsns=() members=() ports=()
    for backend in "${backends[@]}"; do
        declare -A totals=()
        turns=()
        for build in this baseline; do
            dir=$(mktemp -d)
            dirs+=("$dir")
            binary=$TARGET/keygate
            [ "$build" = this ] || binary=$BASELINE
            new_database "$backend"
            start_keygate $port "$url" 100000 "$binary" "$dir"
            base=http://127.0.0.1:$port
            dsns[$build]=$(curl -sf "$base/agents" -H "Authorization: Bearer $TOKEN" -d '{"name":"bench"}' | json_field token)
            members[$build]=$(curl -sf "$base/apikeys" -H "Authorization: Bearer $TOKEN" -d '{"name":"bench","role":"member"}' | json_field key)
            ports[$build]=$port
            port=$((port + 1))
        done
        health=() verify=()
        for _ in $(seq 1 "${ROUNDS_AB:-3}"); do
            for build in this baseline; do
                base=http://127.0.0.1:${ports[$build]}
                MEMBER=${members[$build]}
                read -r h _ _ < <(measure "$base/healthz" "$CONNECTIONS")
                read -r v _ _ < <(measure "$base/verify" "$CONNECTIONS" "${dsns[$build]}")
                totals[health_$build]=$(( ${totals[health_$build]:-0} + h ))
                totals[verify_$build]=$(( ${totals[verify_$build]:-0} + v ))
                health+=("$h") verify+=("$v")
            done
        done
        pairs() { local -n list=$1; local out=(); for ((i = 0; i < ${#list[@]}; i += 2)); do out+=("${list[i]} / ${list[i + 1]}"); done; local IFS=,; echo "${out[*]}"; }
        echo "| $backend | $(ratio "${totals[health_this]}" "${totals[health_baseline]}") | $(ratio "${totals[verify_this]}" "${totals[verify_baseline]}") | $(pairs health) | $(pairs verify) |"
        unset totals
    done
    echo
    [ -z "${OVERHEAD_ONLY:-}" ] || exit 0
fi
echo "Ratios 1, 2 and 2b: bare axum and keygate measured in $TURNS interleaved turns, req/s averaged"
echo
echo "| database | 1. healthz ÷ bare (≥ 0.8) | 2. verify ÷ healthz (≥ 0.8) | 2b. verify ÷ bare verify (≥ 0.7) | 3. verify p99 ÷ healthz p99 at $MODERATE conns (≤ 1.3) | bare healthz / verify req/s | healthz req/s | verify req/s | healthz p50/p99 ms | verify p50/p99 ms (at $MODERATE) |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"

port=8200
second_table=()
for backend in "${backends[@]}"; do
    new_database "$backend"
    start_keygate $port "$url"
    cached_pid=${pids[-1]}
    base=http://127.0.0.1:$port
    dsn=$(curl -sf "$base/agents" -H "Authorization: Bearer $TOKEN" -d '{"name":"bench"}' | json_field token)
    MEMBER=$(curl -sf "$base/apikeys" -H "Authorization: Bearer $TOKEN" -d '{"name":"bench","role":"member"}' | json_field key)
    # Bare axum and keygate in turns, so that whatever else the host does weighs on both.
    bare_rps=0 bare_verify_rps=0 health_rps=0 verify_rps=0
    for _ in $(seq 1 "$TURNS"); do
        read -r rps _ _ < <(measure http://127.0.0.1:8198/healthz "$CONNECTIONS")
        bare_rps=$((bare_rps + rps / TURNS))
        read -r rps _ _ < <(measure "$base/healthz" "$CONNECTIONS")
        health_rps=$((health_rps + rps / TURNS))
        read -r rps _ _ < <(measure http://127.0.0.1:8198/verify "$CONNECTIONS" xagt-bench)
        bare_verify_rps=$((bare_verify_rps + rps / TURNS))
        read -r rps _ _ < <(measure "$base/verify" "$CONNECTIONS" "$dsn")
        verify_rps=$((verify_rps + rps / TURNS))
    done
    read -r _ health_p50 health_p99 < <(measure "$base/healthz" "$MODERATE")
    read -r _ verify_p50 verify_p99 < <(measure "$base/verify" "$MODERATE" "$dsn")
    echo "| $backend | $(ratio "$health_rps" "$bare_rps") | $(ratio "$verify_rps" "$health_rps") | $(ratio "$verify_rps" "$bare_verify_rps") | $(ratio "$verify_p99" "$health_p99") | $bare_rps / $bare_verify_rps | $health_rps | $verify_rps | $health_p50 / $health_p99 | $verify_p50 / $verify_p99 |"

    # 4-7: a second instance on the same database with its cache off: every verify reads it.
    cold=http://127.0.0.1:$((port + 2))
    start_keygate $((port + 2)) "$url" 0
    cold_pid=${pids[-1]}
    bash bench/seed.sh "$url" 1 999
    read -r _ few_verify_p50 _ < <(measure "$cold/verify" "$MODERATE" "$dsn")
    read -r _ few_list_p50 _ < <(measure "$base/agents?limit=100" "$MODERATE" list)
    bash bench/seed.sh "$url" 1000 $((MANY - 1))
    read -r _ many_verify_p50 _ < <(measure "$cold/verify" "$MODERATE" "$dsn")
    read -r _ many_list_p50 _ < <(measure "$base/agents?limit=100" "$MODERATE" list)
    read -r cold_rps _ _ < <(measure "$cold/verify" "$CONNECTIONS" "$dsn")
    key=${dsn#*://*:}
    key=${key%%@*}
    digest=$(printf %s "$key" | sha256sum | cut -d' ' -f1)
    seconds=${DURATION%s}
    lookup_rps=$("$TARGET/examples/db_baseline" "$url" lookup "$digest" "$CONNECTIONS" "$seconds")
    read -r create_rps _ _ < <(measure "$base/agents" "$CONNECTIONS" create)
    insert_rps=$("$TARGET/examples/db_baseline" "$url" insert - "$CONNECTIONS" "$seconds")
    rss_mib() { awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }
    second_table+=("| $backend | $(ratio "$cold_rps" "$lookup_rps") | $(ratio "$create_rps" "$insert_rps") | $(ratio "$many_verify_p50" "$few_verify_p50") | $(ratio "$many_list_p50" "$few_list_p50") | $(rss_mib "$cached_pid") / $(rss_mib "$cold_pid") | $cold_rps / $lookup_rps | $create_rps / $insert_rps | $few_verify_p50 → $many_verify_p50 | $few_list_p50 → $many_list_p50 |")
    if [ "$backend" = postgres ]; then
        second=$((port + 1))
        start_keygate $second "$url"
        lag=$("$TARGET/examples/revocation_lag" "$base" "http://127.0.0.1:$second" "$TOKEN" "$ROUNDS")
    fi
    port=$((port + 10))
done
echo
echo "| database | 4. cold verify ÷ point lookup (≥ 0.5) | 5. agent creation ÷ insert-and-commit (≥ 0.5) | 6. verify p50, $MANY ÷ 1,000 keys (≤ 1.2) | 6. first list page p50, $MANY ÷ 1,000 (≤ 1.2) | 7. peak RSS MiB, cached / cold instance (≤ 100) | cold verify / lookup per s | creations / inserts per s | cold verify p50 ms | list p50 ms |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${second_table[@]}"
echo
echo "8. ${lag:-revocation lag: needs BENCH_POSTGRES_URL} (goal: max < 1000 ms)"
