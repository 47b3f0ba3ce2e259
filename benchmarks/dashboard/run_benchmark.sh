#!/bin/bash
# The dashboard benchmark end to end: makes the store of the 100 000-trial study once
# (`hippo run random_100k.yaml`: random search, sim trainer in virtual time, minutes), then runs
# dashboard_benchmark.mjs against it. Not part of `make test`: `make bench-dashboard` or the
# CMake target `dashboard_benchmark`.
# Usage: run_benchmark.sh BUILD_DIR [options of dashboard_benchmark.mjs]
set -euo pipefail
build=$(realpath "$1")
shift
here=$(dirname "$(realpath "$0")")
out="$build/benchmarks/dashboard"
store="$out/random_100k.db"
mkdir -p "$out"
if [ ! -f "$store" ]; then
  echo "making $store (100 000 trials; a few minutes)"
  rm -rf "$store.part" "$store.part-wal" "$store.part-shm" "$out/checkpoints"
  /usr/bin/time -f "store made in %e s" "$build/cli/hippo" run "$here/random_100k.yaml" \
    --db "$store.part" --checkpoint-dir "$out/checkpoints" --workers 2 --json > "$out/store.json"
  # One file: what the write-ahead log holds goes into the database before it is copied.
  sqlite3 "$store.part" "PRAGMA wal_checkpoint(TRUNCATE);" > /dev/null
  mv "$store.part" "$store"
  rm -rf "$out/checkpoints"
fi
HIPPO_BIN="$build/cli/hippo" HIPPO_NODE_MODULES="$build/dashboard/web/node_modules" \
  node "$here/dashboard_benchmark.mjs" --db "$store" --out "$build/dashboard_benchmark.json" "$@"
