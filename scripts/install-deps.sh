#!/usr/bin/env bash
# Installs every Debian 12 package the build, the tests and the demo need.
# Idempotent and quick when everything is present: it only calls apt-get for what is missing.
set -euo pipefail

packages=(
  # The build: compilers, CMake and ccache (used when present).
  build-essential cmake ccache pkg-config
  # find_package in CMakeLists.txt: Protobuf, gRPC, absl, yaml-cpp, nlohmann_json (proto/),
  # Boost (Boost.Graph), CLI11, SQLite3 (store/, tests/store/), GTest/GMock (tests/), ZLIB
  # (workers/torch/), Torch (optional: the torch trainer is built where LibTorch is found).
  protobuf-compiler protobuf-compiler-grpc libprotobuf-dev libgrpc++-dev libabsl-dev
  libyaml-cpp-dev nlohmann-json3-dev libboost-graph-dev libcli11-dev libsqlite3-dev
  libgtest-dev libgmock-dev zlib1g-dev libtorch-dev
  # The tests and the demo: Fashion-MNIST (torch trainer tests, `make demo`); /usr/bin/python3
  # runs the command trainer's test fixture, and with torch and numpy the command example
  # (tests/e2e/command_example_test.cc).
  dataset-fashion-mnist python3 python3-torch python3-numpy
  # The Python package (python/): built into a venv with setuptools and grpc_tools, its runtime
  # dependencies, its tests (pytest) and the benchmark against Optuna.
  python3-venv python3-setuptools python3-grpc-tools python3-grpcio python3-protobuf
  python3-yaml python3-tqdm python3-pandas python3-pytest python3-optuna
  # Tools the documentation and the CLI's output point to: Graphviz renders `hippo plan --dot`
  # and `hippo tree --dot`; sqlite3 inspects a coordinator's database.
  graphviz sqlite3
  # The dashboard (dashboard/): its HTTP server, the web app's build (node and npm) and its
  # browser tests (headless Chromium driven by playwright-core).
  libcpp-httplib-dev nodejs chromium
  # TLS: OpenSSL for cpp-httplib's HTTPS server (the dashboard with --tls-cert), and the openssl
  # command that makes the tests' certificates (tests/e2e/auth_test.cc, tests/python).
  libssl-dev openssl
)
# dashboard/ needs npm. Debian's nodejs leaves it to the npm package; other builds of nodejs
# (NodeSource's) bundle it and conflict with that package, so ask for it only when it is absent.
if ! command -v npm >/dev/null 2>&1; then
  packages+=(npm)
fi

missing=()
for package in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$package")
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then
  sudo_cmd=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
if ! "${sudo_cmd[@]}" apt-get install -y --no-install-recommends "${missing[@]}"; then
  "${sudo_cmd[@]}" apt-get update
  "${sudo_cmd[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
fi
