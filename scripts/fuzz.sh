#!/usr/bin/env bash
# Build the libFuzzer drivers (clang, -DHB_FUZZ=ON, in build-fuzz/ or
# $BUILD_DIR) and run each of them for [minutes] (default 1), one after the
# other. The committed seeds in tests/fuzz/corpus/<name> are only read; what
# the fuzzer finds goes to <build>/tests/fuzz/corpus/<name> (new inputs) and
# <build>/tests/fuzz/artifacts/ (crashes), so the tree stays clean.
#   scripts/fuzz.sh [minutes]
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-1}"
[[ "$minutes" =~ ^[0-9]+$ ]] || { echo "usage: scripts/fuzz.sh [minutes]" >&2; exit 2; }
dir="${BUILD_DIR:-build-fuzz}"
CC=clang BUILD_DIR="$dir" BUILD_TYPE=Debug scripts/build.sh -DHB_FUZZ=ON >/dev/null
out="$dir/tests/fuzz"
failed=()
for seeds in tests/fuzz/corpus/*/; do
  name=$(basename "$seeds")
  [[ -x "$out/fuzz_$name" ]] || continue
  mkdir -p "$out/corpus/$name" "$out/artifacts"
  dict=()
  [[ -f "tests/fuzz/$name.dict" ]] && dict=(-dict="tests/fuzz/$name.dict")
  echo "== fuzz_$name for $minutes min (new inputs: $out/corpus/$name)"
  if ! "$out/fuzz_$name" -max_total_time=$((minutes * 60)) -print_final_stats=1 "${dict[@]}" \
      -artifact_prefix="$out/artifacts/$name-" "$out/corpus/$name" "$seeds"; then
    failed+=("$name")
  fi
done
if ((${#failed[@]})); then
  echo "fuzz.sh: findings for ${failed[*]} in $out/artifacts/" >&2
  exit 1
fi
echo "fuzz.sh: no findings"
