#!/usr/bin/env bash
# Build hookbridge and run it on the embedded default: the file sink, a
# self-signed certificate and a development secret (config/local.conf).
# Extra arguments go to hookbridge, e.g. scripts/run.sh -c my.conf
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
if (($# == 0)); then set -- -c config/local.conf; fi
exec build/hookbridge "$@"
