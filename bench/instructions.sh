#!/usr/bin/env bash
# User-space instructions per request of keygate and of the bare axum ceiling, counted by
# valgrind's callgrind: /healthz and a cached POST /verify, on SQLite. Unlike req/s on a shared
# host, a count repeats to within a fraction of a percent whatever else the machine does, so a
# change's cost shows before a wrk run could tell it from noise. It does not count the kernel's
# share (loopback TCP, about half of a request's time under wrk), nor waits.
#   bench/instructions.sh              # this build
#   BINARY=/path/to/keygate bench/instructions.sh   # another build, e.g. to compare
# Knobs: REQUESTS (1000 per route). Leaves each profile as callgrind.out.<pid>.<n> in $OUT
# (a temporary directory), for callgrind_annotate --inclusive=yes.
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS=${REQUESTS:-1000}
TOKEN=bench-bootstrap-token-0123456789
TARGET=${CARGO_TARGET_DIR:-target}/release
OUT=${OUT:-$(mktemp -d)}

command -v valgrind >/dev/null || apt-get install -y valgrind >/dev/null
cargo build --release --quiet --bin keygate --example bare_axum

# POST /verify or GET /healthz $2 times over one keep-alive connection to port $1.
requests() {
    python3 - "$@" <<'PY'
import http.client, json, sys
port, path, count, token, dsn = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
connection = http.client.HTTPConnection("127.0.0.1", int(port))
body = json.dumps({"key": dsn}) if path == "/verify" else None
headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json"} if body else {}
for _ in range(count):
    connection.request("POST" if body else "GET", path, body=body, headers=headers)
    answer = connection.getresponse()
    answer.read()
    if answer.status != 200:
        sys.exit(f"{path} answered {answer.status}")
PY
}

# Instructions per request of the server $1 (keygate or bare) listening on port $2.
count() {
    local name=$1 port=$2 data pid dsn=xagt-bench member=-
    data=$(mktemp -d)
    if [ "$name" = keygate ]; then
        env KEYGATE_LISTEN=127.0.0.1:$port KEYGATE_DATA_DIR="$data" KEYGATE_BOOTSTRAP_TOKEN=$TOKEN \
            KEYGATE_DATABASE_URL="sqlite://$data/keygate.db" \
            valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out.%p" \
            "${BINARY:-$TARGET/keygate}" >/dev/null 2>"$OUT/$name.log" &
    else
        valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out.%p" \
            "$TARGET/examples/bare_axum" "127.0.0.1:$port" >/dev/null 2>"$OUT/$name.log" &
    fi
    pid=$!
    for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done
    if [ "$name" = keygate ]; then
        local base=http://127.0.0.1:$port
        dsn=$(curl -sf "$base/agents" -H "Authorization: Bearer $TOKEN" -d '{"name":"bench"}' |
            sed 's/.*"token":"\([^"]*\)".*/\1/')
        member=$(curl -sf "$base/apikeys" -H "Authorization: Bearer $TOKEN" \
            -d '{"name":"bench","role":"member"}' | sed 's/.*"key":"\([^"]*\)".*/\1/')
    fi
    # Warm up (caches, pool, first allocations), then count each route from zero.
    requests "$port" /healthz 200 "$member" "$dsn"
    requests "$port" /verify 200 "$member" "$dsn"
    local route total
    for route in healthz verify; do
        callgrind_control --zero "$pid" >/dev/null 2>&1
        requests "$port" "/$route" "$REQUESTS" "$member" "$dsn"
        callgrind_control --dump="$route" "$pid" >/dev/null 2>&1
    done
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    rm -rf "$data"
    for route in healthz verify; do
        total=$(grep -l "^desc: Trigger: .*$route" "$OUT/callgrind.out.$pid".* |
            xargs grep -h '^summary:' | awk '{ print $2 }')
        printf '%s %s %d\n' "$name" "$route" $((total / REQUESTS))
    done
}

{
    count bare 8498
    count keygate 8499
} | awk '
    { per[$1 " " $2] = $3 }
    END {
        print "| route | bare axum | keygate | keygate ÷ bare |"
        print "|---|---:|---:|---:|"
        split("healthz verify", routes, " ")
        for (i = 1; i <= 2; i++) {
            r = routes[i]
            printf "| %s | %d | %d | %.2f |\n", r, per["bare " r], per["keygate " r], per["keygate " r] / per["bare " r]
        }
    }'
echo "(user-space instructions per request, $REQUESTS requests each; profiles in $OUT)"
