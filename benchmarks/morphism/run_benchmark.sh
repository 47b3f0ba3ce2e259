#!/usr/bin/env bash
# Morphism against evolution from scratch (evolution.yaml, morphism.yaml): each study with the
# given seeds (trainer and algorithm; default 0 1 2), `hippo run --workers 2 --json` on this
# machine's CPU, the two algorithms alternating so that both see the same load, then both
# comparisons over every run in the output folder (summarize.py): the best accuracy with the
# epochs each trained, and the epochs each needed to reach evolution's best.
# `uptime` before and after each run goes beside its figures. Runs of other seeds already in the
# output folder are kept, so that the seeds can be run in separate invocations (each short
# enough to hold the shared benchmark lock). ALGORITHMS (default "evolution morphism") runs only
# the arms named, e.g. ALGORITHMS=morphism to run that arm in a hold of its own beside
# evolution's runs already in the folder.
# Usage: [ALGORITHMS=...] benchmarks/morphism/run_benchmark.sh [BUILD_DIR [SEED...]]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:-build}"
shift || true
seeds=("$@")
[[ ${#seeds[@]} -gt 0 ]] || seeds=(0 1 2)
hippo="$build/cli/hippo"
out="$build/benchmarks/morphism"
mkdir -p "$out"
load() { cut -d' ' -f1 /proc/loadavg; }
for seed in "${seeds[@]}"; do
  for algorithm in ${ALGORITHMS:-evolution morphism}; do
    run="$out/$algorithm-$seed"
    rm -rf "$run".*
    sed "s/SEED/$seed/g" "$here/$algorithm.yaml" > "$run.yaml"
    echo "running $algorithm seed $seed: $(uptime)" >&2
    uptime > "$run.uptime"
    before="$(load)"
    "$hippo" run "$run.yaml" --workers 2 --json --db "$run.db" \
      --checkpoint-dir "$run.checkpoints" --no-checkpoint-gc > "$run.json"
    echo "$before $(load)" > "$run.load"
    uptime >> "$run.uptime"
  done
done
python3 "$here/summarize.py" "$out"
