#!/usr/bin/env bash
# Builds every fuzz target the way OSS-Fuzz-like infrastructure expects,
# with no GN: compilers and flags come from the environment, and the
# targets, their seed corpora (zipped), dictionaries and options go to $OUT.
#
#   CC CXX CFLAGS CXXFLAGS   compilers and flags (the sanitizer and coverage
#                            flags of the build: e.g. -fsanitize=address
#                            -fsanitize=fuzzer-no-link)
#   LIB_FUZZING_ENGINE       what links the engine (e.g. -fsanitize=fuzzer)
#   OUT                      where the targets go
#
# Run from anywhere: fuzz/oss_fuzz_build.sh
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
: "${CC:=clang}" "${CXX:=clang++}" "${CFLAGS:=}" "${CXXFLAGS:=}"
: "${LIB_FUZZING_ENGINE:=-fsanitize=fuzzer}" "${OUT:?set OUT}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$OUT"

# The libraries: every C source of imc/, srpc/ and plugin/ that ships
# (not tests, tools, helpers or demos), and the descriptor lister.
lib_sources=$(cd "$src" && ls imc/imc_*.c srpc/srpc_*.c plugin/common/*.c \
  plugin/host/*.c plugin/objects/*.c plugin/broker/broker_*.c |
  grep -v -e _demo.c -e broker_client.c)
objects=()
for f in $lib_sources; do
  o=$work/$(echo "$f" | tr / _).o
  $CC $CFLAGS -std=c11 -D_GNU_SOURCE -I"$src" -c "$src/$f" -o "$o"
  objects+=("$o")
done
$CXX $CXXFLAGS -std=c++17 -D_GNU_SOURCE -I"$src" \
  -c "$src/testing/harness/descriptors.cc" -o "$work/descriptors.o"
objects+=("$work/descriptors.o")
ar rcs "$work/libplugin_all.a" "${objects[@]}"

for target in "$src"/fuzz/*_fuzzer.cc; do
  name=$(basename "$target" .cc)
  $CXX $CXXFLAGS -std=c++17 -D_GNU_SOURCE -I"$src" "$target" \
    "$work/libplugin_all.a" $LIB_FUZZING_ENGINE -pthread -o "$OUT/$name"
  if [ -d "$src/fuzz/${name}_corpus" ]; then
    (cd "$src/fuzz/${name}_corpus" && zip -q -r "$OUT/${name}_seed_corpus.zip" .)
  fi
  dict=$src/fuzz/$name.dict
  [ -f "$dict" ] || dict=$(sed -n "/fuzzer_test(\"$name\")/,/^}/s/.*dict = \"\(.*\)\".*/\1/p" \
    "$src/fuzz/BUILD.gn" | sed "s|^|$src/fuzz/|")
  [ -n "$dict" ] && [ -f "$dict" ] && cp "$dict" "$OUT/$name.dict"
  opts=$(sed -n "/fuzzer_test(\"$name\")/,/^}/p" "$src/fuzz/BUILD.gn" |
    grep -o '"[a-z_]*=[^"]*"' | tr -d '"' || true)
  if [ -n "$opts" ]; then
    { echo "[libfuzzer]"; echo "$opts"; } >"$OUT/$name.options"
  fi
  echo "built $OUT/$name"
done
