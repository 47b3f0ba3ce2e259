#!/bin/bash
# Builds a variant of the web app into OUT/dist, to compare with compare.mjs: the sources of
# WEB_DIR (a dashboard/web folder, e.g. of another worktree or a patched copy) with the npm
# packages a CMake build installed (NODE_MODULES: BUILD/dashboard/web/node_modules).
# Usage: build_web.sh WEB_DIR NODE_MODULES OUT [minify: true|false]
set -euo pipefail
web=$(realpath "$1")
modules=$(realpath "$2")
out=$3
minify=${4:-true}
rm -rf "$out"
mkdir -p "$out"
cp -r "$web"/src "$web"/index.html "$web"/tsconfig.json "$web"/vite.config.ts "$web"/package.json "$out"/
ln -s "$modules" "$out"/node_modules
cd "$out"
nice -n 19 ./node_modules/.bin/tsc --noEmit -p .
nice -n 19 ./node_modules/.bin/vite build --minify "$minify" --logLevel warn
echo "$(realpath dist)"
