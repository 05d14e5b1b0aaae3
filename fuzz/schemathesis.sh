#!/usr/bin/env bash
# Schema-driven fuzzing: schemathesis generates requests for every operation of the served
# /openapi.json, authenticated as the bootstrap admin, and checks every answer against the
# document (no 5xx, only documented statuses, content types, headers and bodies).
#
#   fuzz/schemathesis.sh                      # SQLite
#   FUZZ_POSTGRES=postgres://postgres@127.0.0.1:5432/postgres fuzz/schemathesis.sh
#                                             # a fresh database on that server, dropped after
#   EXAMPLES=200 SEED=7 fuzz/schemathesis.sh  # more cases, another seed
#
# The server runs with failure limits raised, so the fuzzer is answered, not rate-limited.
set -euo pipefail
cd "$(dirname "$0")/.."

SEED="${SEED:-20261124}"
EXAMPLES="${EXAMPLES:-100}"
SCHEMATHESIS_VERSION=4.32.5
TARGET="$(realpath "${CARGO_TARGET_DIR:-target}")"
VENV="$TARGET/schemathesis-venv"
TOKEN=schemathesis-bootstrap-token-0123456789abcdef

if [[ ! -x "$VENV/bin/schemathesis" ]] || ! "$VENV/bin/schemathesis" --version | grep -q "$SCHEMATHESIS_VERSION"; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
cargo build --locked --quiet --bin keygate

work=$(mktemp -d)
database=""
cleanup() {
    kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    [[ -n "$database" ]] && psql -q "$FUZZ_POSTGRES" -c "DROP DATABASE IF EXISTS $database WITH (FORCE)"
    rm -rf "$work"
}
trap cleanup EXIT
server=""
if [[ -n "${FUZZ_POSTGRES:-}" ]]; then
    database="keygate_fuzz_$$"
    psql -q "$FUZZ_POSTGRES" -c "CREATE DATABASE $database"
    export KEYGATE_DATABASE_URL="${FUZZ_POSTGRES%/*}/$database"
fi
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
KEYGATE_LISTEN="127.0.0.1:$port" \
KEYGATE_DATA_DIR="$work/data" \
KEYGATE_BOOTSTRAP_TOKEN="$TOKEN" \
KEYGATE_AUTH_FAILURES_PER_MINUTE=1000000 \
KEYGATE_VERIFY_FAILURES_PER_MINUTE=1000000 \
KEYGATE_LOG=debug \
    "$TARGET/debug/keygate" > "$work/server.log" 2>&1 &
server=$!

base="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
    curl -sf "$base/readyz" > /dev/null && break
    sleep 0.1
done

echo "schemathesis $SCHEMATHESIS_VERSION: seed $SEED, up to $EXAMPLES examples per operation, database ${KEYGATE_DATABASE_URL:-sqlite}"
status=0
# From the scratch directory, where schemathesis leaves its cache. One worker: two threads
# parsing hypothesis's lambdas at once can trip CPython 3.11's AST recursion check.
(cd "$work" && "$VENV/bin/schemathesis" --config-file "$OLDPWD/fuzz/schemathesis.toml" --no-color \
    run "$base/openapi.json" \
    --header "Authorization: Bearer $TOKEN" \
    --checks all \
    --seed "$SEED" \
    --max-examples "$EXAMPLES" \
    --workers 1 \
    --request-timeout 10 \
    --suppress-health-check all \
    --generation-database none \
    --report junit --report-dir "$work/report") || status=$?

if ! kill -0 "$server" 2>/dev/null; then
    echo "schemathesis: keygate died during the run" >&2
    cat "$work/server.log" >&2
    exit 1
fi
# Whatever the fuzzer made keygate mint or was told, no secret reached the logs.
if grep -qE "$TOKEN|(xagt-|kgk_|mdbak_|mdbpk_|kgmi_|agx_key_|agx_whsec_)[A-Za-z0-9_-]{49}" "$work/server.log"; then
    echo "schemathesis: a secret reached keygate's logs" >&2
    exit 1
fi
exit "$status"
