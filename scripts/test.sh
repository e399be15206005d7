#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this):
#   1. install what is missing (Debian packages; Kafka's jars through Maven)
#   2. build with -Werror, and again with AddressSanitizer + UBSan
#   3. start a real Redis and a real Kafka broker on free loopback ports
#   4. run every ctest test on the normal build (the `container` label
#      builds and runs the image with podman: tests/container/), a short
#      libFuzzer run of each driver, then the unit and integration tests on
#      the sanitizer build
# The servers are always stopped, whatever fails.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

scripts/install-deps.sh --test

echo "== build (warnings are errors)"
BUILD_DIR=build scripts/build.sh -DHB_WERROR=ON
echo "== build with AddressSanitizer and UndefinedBehaviorSanitizer"
BUILD_DIR=build-asan BUILD_TYPE=Debug scripts/build.sh -DHB_WERROR=ON -DHB_SANITIZE=ON

export HB_REDIS_DIR="${TMPDIR:-/tmp}/hookbridge-test-redis.$$"
export HB_KAFKA_DIR="${TMPDIR:-/tmp}/hookbridge-test-kafka.$$"
cleanup() {
  tests/services/redis.sh stop >/dev/null 2>&1 || true
  tests/services/kafka.sh stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

echo "== start Redis and Kafka"
eval "$(tests/services/redis.sh start | grep '^REDIS_URL=')"
eval "$(tests/services/kafka.sh start | grep '^KAFKA_BROKERS=')"
export REDIS_URL KAFKA_BROKERS
echo "REDIS_URL=$REDIS_URL KAFKA_BROKERS=$KAFKA_BROKERS"

echo "== tests"
ctest --test-dir build --output-on-failure -j2 --timeout 900
echo "== fuzz drivers (clang libFuzzer): seed corpora plus a short mutation run"
CC=clang BUILD_DIR=build-fuzz BUILD_TYPE=Debug scripts/build.sh -DHB_FUZZ=ON >/dev/null
ctest --test-dir build-fuzz --output-on-failure -L fuzz
echo "== tests under AddressSanitizer + UBSan"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
ctest --test-dir build-asan --output-on-failure -j2 --timeout 900 -L 'unit|integration' \
  -LE slow
