#!/usr/bin/env bash
# Morphism against evolution from scratch (evolution.yaml, morphism.yaml): each study with the
# given seeds (trainer and algorithm; default 0 1 2), `hippo run --workers 2 --json` on this
# machine's CPU, the two algorithms alternating so that both see the same load, then both
# comparisons over every run in the output folder (summarize.py): the best accuracy with the
# epochs each trained, and the epochs each needed to reach evolution's best.
# `uptime` before and after each run goes beside its figures. Runs of other seeds already in the
# output folder are kept, so that the seeds can be run in separate invocations (each short
# enough to hold the shared benchmark lock).
# Environment:
#   ALGORITHMS (default "evolution morphism"): only the arms named (each a spec NAME.yaml beside
#     this script), e.g. ALGORITHMS=morphism to run that arm in a hold of its own beside
#     evolution's runs already in the folder.
#   JOBS (default 1): runs at once, for a machine with cores to spare (each run keeps 2 workers of
#     one thread busy, so JOBS=7 on 16 cores); the runs start in the alternating order.
#   DEADLINE (seconds since the epoch): no run starts after it (the runs started finish).
#   OUT_DIR (default BUILD_DIR/benchmarks/morphism): the output folder, e.g. one per round of
#     the same seeds.
#   DEVICE (default: none, the CPU): passed to `hippo run --device`, e.g. cuda:0 to train both
#     workers of every run on that GPU (the specs' threads: 1 then only feeds it).
# Usage: [ALGORITHMS=...] [JOBS=N] [OUT_DIR=...] benchmarks/morphism/run_benchmark.sh
#        [BUILD_DIR [SEED...]]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:-build}"
shift || true
seeds=("$@")
[[ ${#seeds[@]} -gt 0 ]] || seeds=(0 1 2)
hippo="$build/cli/hippo"
out="${OUT_DIR:-$build/benchmarks/morphism}"
jobs="${JOBS:-1}"
mkdir -p "$out"
load() { cut -d' ' -f1 /proc/loadavg; }
one_run() {
  local algorithm=$1 seed=$2
  local run="$out/$algorithm-$seed"
  rm -rf "$run".*
  sed "s/SEED/$seed/g" "$here/$algorithm.yaml" > "$run.yaml"
  echo "running $algorithm seed $seed: $(uptime)" >&2
  uptime > "$run.uptime"
  local before
  before="$(load)"
  "$hippo" run "$run.yaml" --workers 2 --json --db "$run.db" ${DEVICE:+--device "$DEVICE"} \
    --checkpoint-dir "$run.checkpoints" --no-checkpoint-gc > "$run.json"
  echo "$before $(load)" > "$run.load"
  uptime >> "$run.uptime"
}
failed=0
for seed in "${seeds[@]}"; do
  for algorithm in ${ALGORITHMS:-evolution morphism}; do
    # A free slot first (with JOBS > 1), then the deadline.
    while (($(jobs -rp | wc -l) >= jobs)); do wait -n || failed=1; done
    if [[ -n "${DEADLINE:-}" ]] && (($(date +%s) >= DEADLINE)); then
      echo "run_benchmark: past DEADLINE, $algorithm seed $seed not started" >&2
      continue
    fi
    if ((jobs <= 1)); then
      one_run "$algorithm" "$seed"
    else
      one_run "$algorithm" "$seed" &
    fi
  done
done
while (($(jobs -rp | wc -l) > 0)); do wait -n || failed=1; done
((failed == 0)) || echo "run_benchmark: a run failed" >&2
python3 "$here/summarize.py" "$out"
exit "$failed"
