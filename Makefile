# The two commands of a fresh Debian 12 machine: `make demo` and `make test`.
BUILD_DIR ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?= -DHIPPO_WERROR=ON

.PHONY: all deps configure build test unit demo bench format clean

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

# The main job: a real study on this machine (embedded coordinator with SQLite, 4 local workers,
# the sim trainer), after the plan of its stage tree (figures and a Graphviz file).
demo: build
	@$(BUILD_DIR)/cli/hippo plan examples/sim_demo.yaml --dot $(BUILD_DIR)/demo-stage-tree.dot
	@echo
	@$(BUILD_DIR)/cli/hippo run examples/sim_demo.yaml --workers 4 --db $(BUILD_DIR)/demo.db

bench: build
	@$(BUILD_DIR)/benchmarks/stage_tree/stage_tree_benchmark --out $(BUILD_DIR)/stage_tree_benchmark.json
	@$(BUILD_DIR)/benchmarks/coordinator/coordinator_benchmark --out $(BUILD_DIR)/coordinator_benchmark.json

format:
	@clang-format -i $$(git ls-files '*.cc' '*.h')

clean:
	@rm -rf $(BUILD_DIR) $(BUILD_DIR).configure.log
