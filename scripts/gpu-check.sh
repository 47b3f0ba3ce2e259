#!/usr/bin/env bash
# The GPU checks of the torch trainer in one call (issue 6).
#
# Here, once (needs apt-get and network; writes only git-ignored .gpu/):
#   scripts/gpu-check.sh --fetch-debs
#     Debian packages the build needs (gRPC, protobuf, abseil, SQLite, yaml-cpp, cpp-httplib,
#     ...) into .gpu/debs, a Fashion-MNIST subset (the study's data) into .gpu/fashion-mnist, and
#     the dashboard's web app as built here (build/dashboard/assets.cc, or ASSETS=FILE) into
#     .gpu/dashboard-assets.cc.
#
# On the GPU machine (the device tool's run, with carry: [".gpu"]):
#   scripts/gpu-check.sh [--quick] [--no-study] [--no-reference] [--no-tests]
#     unpacks .gpu/debs into /opt/deps, configures (Release, CUDA LibTorch from the python3
#     torch wheel), builds the torch trainer, its tests, the workers tests, hippo and the
#     benchmark, runs the tests, the C++ benchmark (benchmarks/torch_trainer), the PyTorch
#     reference (benchmarks/torch_trainer/pytorch_reference.py) and the merging study
#     (examples/gpu), writes every log and JSON under $OUT (./gpu-out when unset) and prints a
#     short table last.
#   --quick: a short benchmark (ResNet-20, batch 128, few iterations) and no study.
#   GPU_TESTS=REGEX: only the torch trainer's tests whose ctest name matches (e.g. Cuda).
#   --phases LIST: only these of tests, throughput, fork, gap, reference, study, workers (default all),
#     and diagnose (the fork measurement step by step, then under cuda-gdb: where it faults), and
#     morphism: the morphism benchmark (benchmarks/morphism) on the machine's CPU cores, several
#     runs at once; not in the default. Its environment: MORPHISM_SEEDS (default "0 1 2"),
#     MORPHISM_ROUNDS (default "evolution,morphism"; one output folder per entry, each entry the
#     arms it runs, e.g. "evolution,morphism evolution" for a second run of evolution per seed),
#     MORPHISM_JOBS (runs at once over all rounds; default cores / 2 - 1, each run keeping two
#     one-thread workers busy), MORPHISM_SECONDS (no run starts later than this after the phase
#     starts; default 400; MORPHISM_UNTIL, seconds since the epoch, overrides it), MORPHISM_STOP
#     (seconds since the epoch: the runs still going then are stopped, and the tables made of
#     those that finished, so that the phase ends inside the device tool's limit),
#     MORPHISM_DEVICE (e.g. cuda:0: the runs train on that GPU, `hippo run --device`; default
#     the CPU). Each round's runs (JSON, SQLite files, timelines) come back in
#     morphism.tar.gz, summarize.py's tables in morphism-table.txt.
set -uo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo" || exit 1

deb_packages=(
  libabsl-dev libabsl20220623 libboost1.74-dev libboost-graph1.74-dev libc-ares-dev libc-ares2
  libcli11-dev libgrpc++-dev libgrpc++1.51 libgrpc-dev libgrpc29 libprotobuf-dev libprotobuf32
  libprotoc32 libre2-9 libre2-dev libsqlite3-dev libsqlite3-0 protobuf-compiler
  protobuf-compiler-grpc libgtest-dev libgmock-dev libyaml-cpp-dev libyaml-cpp0.7 zlib1g-dev
  libssl-dev libcpp-httplib-dev libcpp-httplib0.11 libbrotli-dev libbrotli1)

fetch_debs() {
  mkdir -p .gpu/debs .gpu/fashion-mnist
  (cd .gpu/debs && apt-get download "${deb_packages[@]}") || return 1
  # The dashboard's web app, built here (npm needs its registry, which the GPU machine cannot
  # reach): hippo embeds it (dashboard/CMakeLists.txt, HIPPO_DASHBOARD_ASSETS).
  local assets=${ASSETS:-build/dashboard/assets.cc}
  if [[ -f "$assets" ]]; then
    cp "$assets" .gpu/dashboard-assets.cc
  else
    echo "gpu-check: no $assets (build the hippo_dashboard target here first, or set ASSETS)" >&2
    return 1
  fi
  # The study trains on the first 6400 training and 2000 test images (train_limit/val_limit in
  # examples/gpu/w1_resnet20_fmnist.yaml), the morphism benchmark on the first 6000 and 5000
  # (benchmarks/morphism/*.yaml); the GPU machine has no copy of the dataset.
  python3 - <<'EOF' || return 1
import gzip, os
src = "/usr/share/datasets/fashion-mnist"
dst = ".gpu/fashion-mnist"
for name, count in [("train", 10000), ("t10k", 5000)]:
    with gzip.open(f"{src}/{name}-images-idx3-ubyte.gz") as f:
        data = f.read()
    header = bytearray(data[:16]); header[4:8] = count.to_bytes(4, "big")
    with gzip.open(f"{dst}/{name}-images-idx3-ubyte.gz", "wb") as f:
        f.write(bytes(header) + data[16:16 + count * 28 * 28])
    with gzip.open(f"{src}/{name}-labels-idx1-ubyte.gz") as f:
        data = f.read()
    header = bytearray(data[:8]); header[4:8] = count.to_bytes(4, "big")
    with gzip.open(f"{dst}/{name}-labels-idx1-ubyte.gz", "wb") as f:
        f.write(bytes(header) + data[8:8 + count])
EOF
  du -sh .gpu/debs .gpu/fashion-mnist
}

if [[ "${1:-}" == "--fetch-debs" ]]; then
  fetch_debs
  exit $?
fi

quick=0
phases=",tests,throughput,fork,gap,reference,study,workers,"
while (($#)); do
  case "$1" in
    --quick) quick=1; phases=${phases/,study,/,} ;;
    --no-study) phases=${phases/,study,/,} ;;
    --no-reference) phases=${phases/,reference,/,} ;;
    --no-tests) phases=${phases/,tests,/,} ;;
    --phases) shift; phases=",$1," ;;
    *) echo "gpu-check: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
runs() { [[ "$phases" == *",$1,"* ]]; }
study=0; runs study && study=1
reference=0; runs reference && reference=1
tests=0; runs tests && tests=1

# Logs and figures go to $out. Under the device tool ($OUT set) they are written to a scratch
# folder and packed into $OUT/gpu-check.tar.gz after every phase (only 8 files come back from
# $OUT); summary.txt and table.txt are copied beside it.
if [[ -n "${OUT:-}" ]]; then
  out=/tmp/gpu-check
  pack() {
    tar -czf "$OUT/gpu-check.tar.gz.tmp" -C "$out" . && mv "$OUT/gpu-check.tar.gz.tmp" "$OUT/gpu-check.tar.gz"
    cp "$out"/summary.txt "$out"/table.txt "$OUT/" 2>/dev/null
  }
else
  out=$repo/gpu-out
  pack() { :; }
fi
rm -rf "$out"
mkdir -p "$out"
summary="$out/summary.txt"
: >"$summary"
note() { echo "$*" | tee -a "$summary"; pack; }
started=$(date +%s)
elapsed() { echo $(($(date +%s) - started)); }

export NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
  nvidia-smi
  nproc
  lscpu
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))'
} >"$out/machine.txt" 2>&1
note "machine: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1), $(nproc) cores ($(lscpu | sed -n 's/^Model name: *//p' | head -1))"

# --- dependencies: the Debian packages, unpacked into a prefix ------------------------------------
deps=/opt/deps
if ! ls .gpu/debs/*.deb >/dev/null 2>&1; then
  note "gpu-check: no .gpu/debs; run scripts/gpu-check.sh --fetch-debs here and carry .gpu"
  exit 1
fi
for f in .gpu/debs/*.deb; do dpkg -x "$f" "$deps"; done
lib="$deps/usr/lib/x86_64-linux-gnu"
# libssl-dev's libssl.so points at libssl.so.3, which the machine has under /usr/lib.
for so in libssl libcrypto; do
  if [[ ! -e "$lib/$so.so" && -e "/usr/lib/x86_64-linux-gnu/$so.so.3" ]]; then
    ln -sf "/usr/lib/x86_64-linux-gnu/$so.so.3" "$lib/$so.so"
  fi
done
export LD_LIBRARY_PATH="$lib:${LD_LIBRARY_PATH:-}" LIBRARY_PATH="$lib"
export PATH="$deps/usr/bin:$PATH"

# --- configure and build ------------------------------------------------------------------------
build=build-cuda
torch_prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
generator=()
keep_going=(-- -k)
if command -v ninja >/dev/null; then
  generator=(-G Ninja)
  keep_going=(-- -k 0)
fi
if ! cmake -S . -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$torch_prefix;$deps/usr;$lib/cmake" \
    -DProtobuf_PROTOC_EXECUTABLE="$deps/usr/bin/protoc" \
    -DProtobuf_INCLUDE_DIR="$deps/usr/include" -DProtobuf_LIBRARY="$lib/libprotobuf.so" \
    -DSQLite3_INCLUDE_DIR="$deps/usr/include" -DSQLite3_LIBRARY="$lib/libsqlite3.so" \
    -DTORCH_CUDA_ARCH_LIST=9.0 -DCMAKE_CXX_FLAGS=-g \
    -DHIPPO_DASHBOARD_ASSETS="$(ls "$repo/.gpu/dashboard-assets.cc" 2>/dev/null)" \
    -DHIPPO_BUILD_TESTS="$( ((tests)) && echo ON || echo OFF)" \
    >"$out/configure.log" 2>&1; then
  note "gpu-check: configure failed after $(elapsed) s; see configure.log"
  tail -40 "$out/configure.log"
  exit 1
fi
grep -E "torch trainer|LibTorch" "$out/configure.log" | tee -a "$summary"

# Only what the checks need: the torch trainer's tests, the workers tests, hippo, the benchmark.
wanted=()
for phase in throughput fork gap diagnose; do
  runs "$phase" && wanted+=(torch_trainer_benchmark) && break
done
((study)) && wanted+=(hippo)
runs morphism && wanted+=(hippo)
runs workers && wanted+=(hippo)
available=$(cmake --build "$build" --target help 2>/dev/null)
if ((tests)); then
  # GPU_TESTS (a ctest regex) narrows the tests to the torch trainer's that match it.
  [[ -z "${GPU_TESTS:-}" ]] && wanted+=(sim_trainer_test checkpoint_store_test fork_cache_test
                                        worker_session_test command_trainer_test)
  while read -r name; do wanted+=("$name"); done < <(echo "$available" |
    grep -oE '\btorch[a-z_]*_test\b' | sort -u)
fi
targets=()
for target in "${wanted[@]}"; do
  if echo "$available" | grep -qE "(^|[ :.])$target(:|$| )"; then targets+=("$target"); fi
done
note "building: ${targets[*]}"
if ! cmake --build "$build" -j"$(nproc)" --target "${targets[@]}" "${keep_going[@]}" \
    >"$out/build.log" 2>&1; then
  note "gpu-check: build failed after $(elapsed) s; the first errors:"
  grep -E "error:|Error [0-9]|FAILED" "$out/build.log" | head -30 | tee -a "$summary"
  # Keep going with whatever did build.
fi
note "built after $(elapsed) s"
# libstdc++ must come before LibTorch in the programs' library search order (workers/torch/
# CMakeLists.txt says why); the first DT_NEEDED entry shows it.
for program in benchmarks/torch_trainer/torch_trainer_benchmark cli/hippo; do
  [[ -x "$build/$program" ]] || continue
  note "$program: first library $(readelf -d "$build/$program" | grep -m1 NEEDED | grep -oE '\[.*\]')"
done

# --- tests ----------------------------------------------------------------------------------------
if ((tests)); then
  # Everything under tests/workers that was built (the torch trainer's tests live there too).
  timeout 300 ctest --test-dir "$build/tests/workers" -j8 --output-on-failure \
      -E "_NOT_BUILT" ${GPU_TESTS:+-R "$GPU_TESTS"} >"$out/tests.log" 2>&1
  note "tests: $(grep -E 'tests passed|tests failed' "$out/tests.log" | tail -1) ($(elapsed) s)"
  grep -E "^\s+[0-9]+ - .*\((Failed|Timeout|Exception|SEGFAULT|Subprocess)" "$out/tests.log" |
    head -20 | tee -a "$summary"
fi

# --- benchmarks ------------------------------------------------------------------------------------
bench="$build/benchmarks/torch_trainer/torch_trainer_benchmark"
bench_args=(--device cuda:0)
reference_args=(--json "$out/pytorch_reference.json" --layouts nchw,nhwc)
if ((quick)); then
  bench_args+=(--models resnet20 --batch-sizes 128 --steps 3 --iterations-per-step 30)
  reference_args+=(--models resnet20 --batch-sizes 128 --steps 3 --iterations-per-step 30)
fi
# One process per phase, so that a crash in one leaves the others' figures.
if [[ -x "$bench" ]]; then
  for phase in throughput fork gap; do
    runs "$phase" || continue
    timeout 500 "$bench" "${bench_args[@]}" --phases "$phase" --json "$out/hippo_$phase.json" \
        >"$out/hippo_$phase.log" 2>&1
    code=$?
    note "hippo trainer benchmark, $phase: exit $code ($(elapsed) s)"
    if ((code != 0)); then
      tail -40 "$out/hippo_$phase.log" | tee -a "$summary"
      # The crash handler prints binary(+offset) frames; name them (the build has -g).
      grep -oE "torch_trainer_benchmark\(\+0x[0-9a-f]+\)" "$out/hippo_$phase.log" |
        grep -oE "0x[0-9a-f]+" | head -20 | xargs -r addr2line -f -C -i -e "$bench" |
        paste - - | head -30 | tee -a "$summary"
    fi
  done
else
  note "hippo trainer benchmark: not built"
fi
if runs diagnose && [[ -x "$bench" ]]; then
  # Which step of the fork measurement leaves a fault behind, then the stack under cuda-gdb.
  for parts in clone clone,serialize serialize,store serialize,deserialize \
               clone,serialize,store,deserialize; do
    timeout 90 "$bench" --device cuda:0 --phases fork --models resnet20 --repeats 2 \
        --fork-parts "$parts" --json "$out/diagnose-$parts.json" >"$out/diagnose-$parts.log" 2>&1
    note "fork with $parts: exit $?, last: $(grep '\[phase\]' "$out/diagnose-$parts.log" | tail -1)"
  done
  if command -v cuda-gdb >/dev/null; then
    timeout 200 cuda-gdb -q -batch -ex "set pagination off" -ex run -ex bt -ex "info threads" \
        --args "$bench" --device cuda:0 --phases fork --models resnet20 --repeats 1 \
        --json "$out/diagnose-gdb.json" >"$out/diagnose-gdb.log" 2>&1
    note "cuda-gdb: exit $?"
    grep -A25 -E "received signal|^#0" "$out/diagnose-gdb.log" | head -40 | tee -a "$summary"
  fi
fi
if ((reference)); then
  timeout 480 python3 benchmarks/torch_trainer/pytorch_reference.py "${reference_args[@]}" \
      >"$out/pytorch_reference.log" 2>&1
  note "pytorch reference: exit $? ($(elapsed) s)"
fi

# --- the merging study ---------------------------------------------------------------------------
# The Fashion-MNIST subset, where the trainer looks by default (after the tests: the loader's
# test expects the full set or none).
install_fashion_mnist() {
  if [[ -d .gpu/fashion-mnist && ! -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]]; then
    mkdir -p /usr/share/datasets/fashion-mnist
    cp .gpu/fashion-mnist/* /usr/share/datasets/fashion-mnist/
  fi
}
if ((study)); then
  install_fashion_mnist
  hippo="$build/cli/hippo"
  if [[ ! -x "$hippo" ]]; then
    note "study: hippo not built"
  elif ! "$hippo" run --help 2>&1 | grep -q -- "--device"; then
    note "study: this hippo run has no --device flag; skipped"
  else
    spec=examples/gpu/w1_resnet20_fmnist.yaml
    for mode in merge no-merge; do
      flags=(--workers 1 --device cuda:0 --json)
      [[ "$mode" == no-merge ]] && flags+=(--no-merge)
      timeout 200 "$hippo" run "$spec" "${flags[@]}" >"$out/study-$mode.json" \
          2>"$out/study-$mode.log"
      note "study $mode: exit $? ($(elapsed) s)"
    done
  fi
fi

# --- the morphism benchmark on the CPU cores ------------------------------------------------------
if runs morphism; then
  install_fashion_mnist
  if [[ ! -x "$build/cli/hippo" ]]; then
    note "morphism: hippo not built"
  else
    read -r -a rounds <<<"${MORPHISM_ROUNDS:-evolution,morphism}"
    total_jobs=${MORPHISM_JOBS:-$(($(nproc) / 2 - 1))}
    deadline=${MORPHISM_UNTIL:-$(($(date +%s) + ${MORPHISM_SECONDS:-400}))}
    arms=0
    for round in "${rounds[@]}"; do arms=$((arms + $(tr ',' '\n' <<<"$round" | wc -l))); done
    # The trainer's threads: 1 sets LibTorch's; these keep any other pool to one thread too.
    export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
    note "morphism: rounds ${rounds[*]}, seeds ${MORPHISM_SEEDS:-0 1 2}, $total_jobs runs at once"
    # The rounds' folders (their checkpoints too) stay out of $out, which is packed whole.
    rounds_dir=${TMPDIR:-/tmp}/gpu-check-morphism
    rm -rf "$rounds_dir" && mkdir -p "$rounds_dir"
    # The GPU's memory while the runs train on it, every 5 s: the whole card and each process.
    if [[ -n "${MORPHISM_DEVICE:-}" ]]; then
      nvidia-smi --query-gpu=timestamp,memory.used,utilization.gpu --format=csv,noheader \
          -l 5 >"$out/morphism-gpu-memory.csv" 2>&1 &
      sampler=$!
      (while sleep 5; do
         nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader | sed "s/^/$(date +%s), /"
       done) >"$out/morphism-gpu-processes.csv" 2>&1 &
      process_sampler=$!
    fi
    pids=()
    for i in "${!rounds[@]}"; do
      round=${rounds[$i]}
      n=$(tr ',' '\n' <<<"$round" | wc -l)
      # The runs at once, shared among the rounds by their arms.
      jobs=$(((total_jobs * n + arms / 2) / arms)); ((jobs >= 1)) || jobs=1
      # shellcheck disable=SC2086  # the seeds are words
      # A process group of its own (setsid), so that MORPHISM_STOP can stop its runs too.
      OUT_DIR="$rounds_dir/round$((i + 1))" ALGORITHMS="${round//,/ }" JOBS=$jobs \
        DEVICE=${MORPHISM_DEVICE:-} \
        DEADLINE=$deadline setsid benchmarks/morphism/run_benchmark.sh "$build" \
        ${MORPHISM_SEEDS:-0 1 2} >"$out/morphism-round$((i + 1)).log" 2>&1 &
      pids+=($!)
    done
    if [[ -n "${MORPHISM_STOP:-}" ]]; then
      (sleep $((MORPHISM_STOP - $(date +%s))) 2>/dev/null
       for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null; done) &
      stopper=$!
    fi
    for pid in "${pids[@]}"; do wait "$pid"; done
    [[ -n "${stopper:-}" ]] && kill "$stopper" 2>/dev/null
    if [[ -n "${sampler:-}" ]]; then
      kill "$sampler" "$process_sampler" 2>/dev/null
      note "morphism: GPU memory used, most at once $(cut -d, -f2 "$out/morphism-gpu-memory.csv" |
        sort -n | tail -1) MiB; one process at most $(cut -d, -f3 "$out/morphism-gpu-processes.csv" |
        sort -n | tail -1) MiB"
    fi
    note "morphism: runs done ($(elapsed) s; $(ls "$rounds_dir"/round*/*.json | wc -l) started," \
         "$(find "$rounds_dir" -name '*.json' -size +0 | wc -l) finished)"
    python3 benchmarks/morphism/summarize.py "$rounds_dir"/round* >"$out/morphism-table.txt" 2>&1
    cp "$out/morphism-table.txt" "$out"/morphism-round*.log "$rounds_dir/"
    (cd "$rounds_dir" && tar -czf "$out/morphism.tar.gz" morphism-table.txt morphism-round*.log \
      $(find round* -maxdepth 1 -type f \( -name '*.json' -o -name '*.yaml' -o -name '*.db*' \
        -o -name '*.load' -o -name '*.uptime' -o -name '*.timeline' \)))
    [[ -n "${OUT:-}" ]] && cp "$out/morphism.tar.gz" "$out/morphism-table.txt" "$OUT/"
  fi
fi

# --- hippo worker --device auto: one worker process per GPU ----------------------------------------
if runs workers && [[ -x "$build/cli/hippo" ]]; then
  hippo="$build/cli/hippo"
  address=127.0.0.1:50151
  rm -rf /tmp/gpu-check-workers && mkdir -p /tmp/gpu-check-workers
  "$hippo" server --listen "$address" --db /tmp/gpu-check-workers/hippo.db \
      >"$out/workers-server.log" 2>&1 &
  server_pid=$!
  sleep 3
  export HIPPO_TOKEN_FILE=/tmp/gpu-check-workers/hippo.db.token  # written by the server
  "$hippo" worker --coordinator "$address" --checkpoint-dir /tmp/gpu-check-workers/ckpt \
      >"$out/workers-worker.log" 2>&1 &
  worker_pid=$!
  sleep 8
  "$hippo" workers --coordinator "$address" --json >"$out/workers-list.json" 2>&1
  listed=$(grep -oE '"name": *"cuda:[0-9]+"' "$out/workers-list.json" | grep -oE 'cuda:[0-9]+' |
    sort -u | tr '\n' ' ')
  note "workers: $(nvidia-smi -L | wc -l) GPU(s); hippo worker (default --device auto): " \
       "$(head -1 "$out/workers-worker.log"); connected devices: ${listed:-none}"
  kill -TERM "$worker_pid"
  wait "$worker_pid"
  note "workers: stopped with exit $? (children left: $(pgrep -fc 'hippo worker --device cuda' || true))"
  kill -TERM "$server_pid"
  wait "$server_pid"
fi

python3 benchmarks/torch_trainer/summarize.py "$out" >"$out/table.txt" 2>&1
pack
cat "$summary"
echo
cat "$out/table.txt"
