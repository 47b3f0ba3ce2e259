#!/usr/bin/env bash
# Installs the hippo Python package into a fresh venv and runs its tests.
# Usage: run_pytest.sh SOURCE_DIR WORK_DIR HIPPO_BINARY [pytest arguments...]
set -euo pipefail
source_dir=$(realpath "$1") work_dir=$(realpath -m "$2") binary=$(realpath "$3")
shift 3

python=/usr/bin/python3  # Debian's interpreter: its site packages hold grpcio, protobuf, torch
venv=$work_dir/venv
rm -rf "$venv" "$work_dir/package"
mkdir -p "$work_dir"
"$python" -m venv --system-site-packages "$venv"
# Build from a copy so that setuptools' build files stay out of the source tree.
cp -r "$source_dir/python" "$work_dir/package"
# Build outputs of an earlier `pip install ./python` in the checkout would be installed instead.
rm -rf "$work_dir/package/build" "$work_dir/package/"*.egg-info
HIPPO_PROTO_DIR=$source_dir/proto "$venv/bin/pip" install --quiet --no-deps \
  --no-build-isolation --no-index "$work_dir/package"

cd "$source_dir/tests/python"
HIPPO_BINARY=$binary exec "$venv/bin/python" -m pytest -p no:cacheprovider -o console_output_style=classic \
  -rfEs "$@" .
