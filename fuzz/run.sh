#!/usr/bin/env bash
# Runs each cargo-fuzz target for a bounded time; a panic, a failed assertion, an allocation
# over 64 MiB or a process over 1 GiB stops the run and leaves the input in fuzz/artifacts/.
#
#   fuzz/run.sh                       # every target, 60 s each
#   FUZZ_SECONDS=600 fuzz/run.sh dsn  # one target, ten minutes
#
# cargo-fuzz needs nightly flags; on a stable toolchain RUSTC_BOOTSTRAP=1 lets it use them.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${FUZZ_SECONDS:-60}"
command -v cargo-fuzz > /dev/null || cargo install --locked cargo-fuzz
export RUSTC_BOOTSTRAP="${RUSTC_BOOTSTRAP:-1}"

targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    mapfile -t targets < <(cargo fuzz list)
fi
for target in "${targets[@]}"; do
    echo "fuzz: $target for ${seconds} s"
    cargo fuzz run "$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=1024 -malloc_limit_mb=64 -print_final_stats=1
done
