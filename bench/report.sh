#!/usr/bin/env bash
# Markdown tables from a results .tsv of bench/run.sh (it calls this; run it
# by hand to redo the tables of an older run):
#
#   bench/report.sh bench/results/<date>-<host>.tsv
#
# Ratios are to the ceiling (nginx + Lua) at the same number of connections,
# the mean of its rounds in the same run. Then issue 8's targets, checked.
set -euo pipefail
tsv="${1:?usage: $0 RESULTS.tsv}"

awk -F'\t' -f "$(dirname "${BASH_SOURCE[0]}")/report.awk" "$tsv"
