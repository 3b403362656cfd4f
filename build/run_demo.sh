#!/usr/bin/env bash
# The README's first command: installs what is missing, builds the release
# configuration in out/release and runs the demo: a host launches a
# sandboxed module that can reach files only through the host's open()
# broker, and prints every decision.
#
#   build/run_demo.sh                   the example below
#   build/run_demo.sh DEMO_HOST_ARGS    demo_host with your own arguments
set -eu
cd "$(dirname "$0")/.."
build/install-build-deps.sh
gn gen out/release --args='is_debug=false' >/dev/null
ninja -C out/release demo >/dev/null
if [ $# -gt 0 ]; then
  exec out/release/demo_host "$@"
fi

dir=$(mktemp -d /tmp/plugin_demo.XXXXXX)
trap 'rm -rf "$dir"' EXIT
mkdir "$dir/public"
echo "Hello from a file the policy allows." >"$dir/public/hello.txt"
echo "A file outside the policy." >"$dir/secret.txt"
ln -s ../secret.txt "$dir/public/escape"

cat <<TEXT
The module (demo_cat) may read $dir/public and nothing else. It runs in
the sandbox: its own open() calls fail, so it asks the host's broker.
It tries: a file inside, /etc/passwd, a symlink leading out, a ".." path,
and a direct open() of its own.

TEXT
out/release/demo_host --allow-read "$dir/public" --sandbox -- demo_cat \
  "$dir/public/hello.txt" /etc/passwd "$dir/public/escape" \
  "$dir/public/../secret.txt" --direct "$dir/public/hello.txt"
