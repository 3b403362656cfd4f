#!/bin/sh
# Installs, from Debian's packages, whatever the build and tests need and the
# machine lacks. Idempotent; when everything is present it only checks
# (well under a second) and runs no apt-get at all.
set -eu

packages="
  generate-ninja
  ninja-build
  clang
  llvm
  libclang-rt-dev
  gcc
  g++
  googletest
  duktape-dev
"

missing=""
for p in $packages; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  case "$status" in
    *"install ok installed"*) ;;
    *) missing="$missing $p" ;;
  esac
done

if [ -z "$missing" ]; then
  exit 0
fi

echo "install-build-deps: installing:$missing"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing
