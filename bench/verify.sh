#!/usr/bin/env bash
# Load-tests POST /verify, the hot path, with wrk on loopback.
#   bench/verify.sh                                                   # SQLite in a temporary data dir
#   BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres bench/verify.sh   # a fresh Postgres database
# Needs wrk (Debian: apt-get install wrk), and psql for Postgres.
# Knobs: DURATION (20s), CONNECTIONS (32), THREADS (1).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-20s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-1}
PORT=${PORT:-8199}
TOKEN=bench-bootstrap-token-0123456789
BASE=http://127.0.0.1:$PORT

command -v wrk >/dev/null || { echo "wrk is required (apt-get install wrk)" >&2; exit 1; }
cargo build --release --quiet

data_dir=$(mktemp -d)
bench_db=""
cleanup() {
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    rm -rf "$data_dir"
    [ -z "$bench_db" ] || psql -q "$BENCH_POSTGRES_URL" -c "DROP DATABASE IF EXISTS $bench_db WITH (FORCE)"
}
trap cleanup EXIT
if [ -n "${BENCH_POSTGRES_URL:-}" ]; then
    bench_db="keygate_bench_$$"
    psql -q "$BENCH_POSTGRES_URL" -c "CREATE DATABASE $bench_db"
    export KEYGATE_DATABASE_URL="${BENCH_POSTGRES_URL%/*}/$bench_db"
fi
KEYGATE_LISTEN=127.0.0.1:$PORT KEYGATE_DATA_DIR=$data_dir KEYGATE_BOOTSTRAP_TOKEN=$TOKEN \
    KEYGATE_LOG=warn KEYGATE_VERIFY_FAILURES_PER_MINUTE=100000000 \
    ./target/release/keygate &
server=$!
for _ in $(seq 1 100); do curl -sf "$BASE/readyz" >/dev/null && break; sleep 0.1; done

json_field() { sed "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/"; }
agent="bench-$RANDOM$RANDOM"
dsn=$(curl -sf "$BASE/agents" -H "Authorization: Bearer $TOKEN" -d "{\"name\":\"$agent\"}" | json_field token)
member=$(curl -sf "$BASE/apikeys" -H "Authorization: Bearer $TOKEN" -d '{"name":"bench","role":"member"}' | json_field key)

run() {
    echo "== $1"
    VERIFY_TOKEN=$member VERIFY_BODY=$2 wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s bench/verify.lua "$BASE/verify"
}
echo "keygate $(./target/release/keygate --version) on $(curl -s "$BASE/serverinfo" | json_field database), $(nproc) cores"
run "valid agent DSN (auth lookup + verify lookup)" "{\"key\":\"$dsn\"}"
run "malformed key (auth lookup only, refused by checksum)" '{"key":"xagt-not-a-key"}'
