# The two commands of a fresh Debian 12 machine: `make demo` and `make test`.
BUILD_DIR ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?= -DHIPPO_WERROR=ON

.PHONY: all deps configure build test unit demo nas bench bench-hostile bench-workloads bench-dashboard bench-vs-optuna bench-morphism python format clean

all: build

deps:
	@bash scripts/install-deps.sh

configure: deps
	@cmake -S . -B $(BUILD_DIR) $(CMAKE_FLAGS) > $(BUILD_DIR).configure.log 2>&1 || \
	  (cat $(BUILD_DIR).configure.log; exit 1)

build: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS)

# Every test: GoogleTest suites through ctest, fast unit tests first.
test: build
	@cd $(BUILD_DIR) && ctest --output-on-failure --timeout 1200

# The main job: a real study on this machine (embedded coordinator with SQLite, 2 local workers,
# the torch trainer: a small CNN on Fashion-MNIST, ASHA over learning-rate schedules; about two
# minutes on 2 cores), after the stage-tree plan of the sim grid study (figures and a Graphviz
# file).
demo: build
	@$(BUILD_DIR)/cli/hippo plan examples/sim_demo.yaml --dot $(BUILD_DIR)/demo-stage-tree.dot
	@echo
	@$(BUILD_DIR)/cli/hippo run examples/fashion_mnist.yaml --workers 2 --db $(BUILD_DIR)/demo.db

# Neural architecture search on real training (examples/nas/README.md): evolution with ASHA rungs
# over the torch trainer's CNN on Fashion-MNIST, then the best architectures found.
nas: build
	@/usr/bin/python3 examples/nas/nas_summary.py --hippo $(BUILD_DIR)/cli/hippo --db $(BUILD_DIR)/nas.db

# The Python client and worker SDK (python/) into $(BUILD_DIR)/venv, as a user installs it on
# Debian 12 without PyPI: Debian's interpreter, the system's packages, stubs generated from proto/.
python: deps
	@/usr/bin/python3 -m venv --system-site-packages $(BUILD_DIR)/venv
	@$(BUILD_DIR)/venv/bin/pip install --quiet --no-deps --no-build-isolation ./python
	@echo "installed: $(BUILD_DIR)/venv/bin/python -c 'import hippo'"

bench: build
	@$(BUILD_DIR)/benchmarks/stage_tree/stage_tree_benchmark --out $(BUILD_DIR)/stage_tree_benchmark.json
	@$(BUILD_DIR)/benchmarks/coordinator/coordinator_benchmark --out $(BUILD_DIR)/coordinator_benchmark.json

# The coordinator's dispatch rate while a hostile client sends it the largest requests the
# limits allow, against an idle coordinator: 3 rounds of each, alternating, each run about 25 s
# on the 2-core machine so that the budgets' bursts weigh little (minutes). Builds only the
# benchmark.
bench-hostile: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS) --target coordinator_benchmark
	@$(BUILD_DIR)/benchmarks/coordinator/coordinator_benchmark --trials 150000 --hostile-rounds 3 \
	  --out $(BUILD_DIR)/coordinator_hostile_benchmark.json

# W1-W6 in virtual time (savings against trial by trial, distinct configurations and
# checkpoint-copying PBT; makespans), then the ASHA-driven workloads with real workers, 10 runs
# each, for the spread that the order of results makes (minutes).
bench-workloads: build
	@$(BUILD_DIR)/benchmarks/workloads/workloads_benchmark --workers 8 --out $(BUILD_DIR)/workloads_benchmark.json
	@benchmarks/workloads/asha_spread.py $(BUILD_DIR)/cli/hippo --runs 10 --workers 8 --out $(BUILD_DIR)/asha_spread.json

# The dashboard with a 100 000-trial study in headless Chromium (makes the store once; minutes).
bench-dashboard: build
	@benchmarks/dashboard/run_benchmark.sh $(BUILD_DIR)

# Hippo (merging on), Hippo --no-merge and Optuna 3.1 on the same PyTorch study, grid, ASHA and
# Hyperband, MLP and CNN, 1 and 2 workers, medians of 3 runs (benchmarks/vs_optuna; about 45
# minutes on the 2-core machine). One run: ARGS="--runs 1 --first-run N --out FILE"
bench-vs-optuna: build python
	@$(BUILD_DIR)/venv/bin/python benchmarks/vs_optuna/run_benchmark.py --hippo $(BUILD_DIR)/cli/hippo \
	  --out $(BUILD_DIR)/vs_optuna_benchmark.json $(ARGS)

# Morphism (children inherit their parent's weights) against evolution from scratch on the
# examples/nas search space, a Fashion-MNIST subset, 3 seeds each (benchmarks/README.md; about
# 18 minutes on 2 loaded cores).
bench-morphism: build
	@benchmarks/morphism/run_benchmark.sh $(BUILD_DIR)

format:
	@clang-format -i $$(git ls-files '*.cc' '*.h')

clean:
	@rm -rf $(BUILD_DIR) $(BUILD_DIR).configure.log
