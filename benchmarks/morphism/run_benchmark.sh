#!/usr/bin/env bash
# Morphism against evolution from scratch (evolution.yaml, morphism.yaml): each study with seeds
# 0, 1 and 2 (trainer and algorithm), `hippo run --workers 2 --json` on this machine's CPU, the
# two algorithms alternating so that both see the same load, then the medians (summarize.py).
# The 1-minute load average before and after each run goes beside its figures.
# Usage: benchmarks/morphism/run_benchmark.sh [BUILD_DIR]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:-build}"
hippo="$build/cli/hippo"
out="$build/benchmarks/morphism"
rm -rf "$out"
mkdir -p "$out"
load() { cut -d' ' -f1 /proc/loadavg; }
for seed in 0 1 2; do
  for algorithm in evolution morphism; do
    spec="$out/$algorithm-$seed.yaml"
    sed "s/SEED/$seed/g" "$here/$algorithm.yaml" > "$spec"
    echo "running $algorithm seed $seed (load $(load))" >&2
    before="$(load)"
    "$hippo" run "$spec" --workers 2 --json --db "$out/$algorithm-$seed.db" \
      --checkpoint-dir "$out/$algorithm-$seed.checkpoints" > "$out/$algorithm-$seed.json"
    echo "$before $(load)" > "$out/$algorithm-$seed.load"
  done
done
python3 "$here/summarize.py" "$out"
