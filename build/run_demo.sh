#!/usr/bin/env bash
# The README's first command: installs what is missing, builds the release
# configuration in out/release and runs the demo.
set -eu
cd "$(dirname "$0")/.."
build/install-build-deps.sh
gn gen out/release --args='is_debug=false' >/dev/null
ninja -C out/release demo >/dev/null
exec out/release/imc_demo "$@"
