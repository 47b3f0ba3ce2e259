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

# The main job: plan W1 of WORKLOADS.md as a stage tree, print its figures, write Graphviz.
demo: build
	@$(BUILD_DIR)/cli/hippo plan examples/workloads/w1.yaml --dot $(BUILD_DIR)/w1-stage-tree.dot

bench: build
	@$(BUILD_DIR)/benchmarks/stage_tree/stage_tree_benchmark

format:
	@clang-format -i $$(git ls-files '*.cc' '*.h')

clean:
	@rm -rf $(BUILD_DIR) $(BUILD_DIR).configure.log
