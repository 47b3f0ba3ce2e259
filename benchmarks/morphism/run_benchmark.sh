#!/usr/bin/env bash
# Morphism against evolution from scratch (evolution.yaml, morphism.yaml): each study with seeds
# 0, 1 and 2 (trainer and algorithm), `hippo run --workers 2 --json` on this machine's CPU, then
# the medians (summarize.py). Usage: benchmarks/morphism/run_benchmark.sh [BUILD_DIR]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:-build}"
hippo="$build/cli/hippo"
out="$build/benchmarks/morphism"
mkdir -p "$out"
for algorithm in evolution morphism; do
  for seed in 0 1 2; do
    spec="$out/$algorithm-$seed.yaml"
    sed "s/SEED/$seed/g" "$here/$algorithm.yaml" > "$spec"
    echo "running $algorithm seed $seed" >&2
    "$hippo" run "$spec" --workers 2 --json --db "$out/$algorithm-$seed.db" > "$out/$algorithm-$seed.json"
  done
done
python3 "$here/summarize.py" "$out"
