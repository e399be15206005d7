#!/usr/bin/env bash
# Compare hookbridge binaries run after run on this machine: for each round
# and each binary, a fresh bridge (file sink, ack = durable, 1 worker,
# 32 connections, as bench/profile.sh), then
#   - CPU per request (all threads, until the sink has published everything)
#     over one wrk run without any tracing, and
#   - system calls and context switches per request over a second, shorter
#     wrk run under `perf stat`.
# Binaries alternate within each round, so that a busy spell of the machine
# hits all of them: on a shared machine read the medians and ranges of CPU
# per request over several rounds, and the system calls (steady) first.
#
#   bench/compare.sh [--rounds N] [-d S] [--conns N] BIN [BIN...]
# Defaults: 3 rounds, 10 s (the perf stat run: 3 s), 32 connections.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=bench/lib.sh
. bench/lib.sh

rounds=3 duration=10 conns=32 bins=()
while (($#)); do
    case "$1" in
    --rounds) rounds="$2"; shift ;;
    -d | --duration) duration="$2"; shift ;;
    --conns) conns="$2"; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $1 (try --help)" ;;
    *) bins+=("$(realpath "$1")") ;;
    esac
    shift
done
((${#bins[@]})) || die "name at least one binary (try --help)"
DRAIN_TIMEOUT="${DRAIN_TIMEOUT:-120}"
command -v perf >/dev/null || apt_install linux-perf
HB_BIN="${bins[0]}" HB_BIN_GIVEN=1
bench_setup

events="context-switches"
for c in epoll_wait epoll_ctl read write futex fdatasync pwrite64 pread64; do
    events="$events,syscalls:sys_enter_$c"
done
for r in $(seq "$rounds"); do
    for b in "${bins[@]}"; do
        HB_BIN="$b"
        hb_start file durable 1 ""
        url="https://127.0.0.1:$HB_PORT/webhooks/intercom"
        measure "$HB_PID" "" "$url" "$conns" 1
        line="$(printf '%s round %d: %s µs/req, %s req/s, p99 %s ms, others %s cores, published %s of %s' \
            "$b" "$r" "$CPU_US" "$W_rps" "$W_p99_ms" "$OTHERS_CORES" "$PUBLISHED" "$ANSWERED")"
        perf stat -x, -e "$events" -p "$HB_PID" -o "$TMP/stat.csv" >/dev/null 2>&1 &
        stat_pid=$!
        PIDS+=("$stat_pid")
        sleep 0.5
        out="$(wrk -t1 -c"$conns" -d3s --timeout 10s -s bench/post.lua "$url" 2>&1)" || true
        kill -INT "$stat_pid" 2>/dev/null || true
        wait "$stat_pid" 2>/dev/null || true
        forget_pid "$stat_pid"
        n="$(sed -n 's/^RESULT requests=\([0-9]*\).*/\1/p' <<<"$out")"
        calls="$(awk -F, -v n="${n:-0}" '$1 ~ /^[0-9.]+$/ && $3 != "" && n > 0 {
                name = $3; sub(/^syscalls:sys_enter_/, "", name)
                printf "%s %.2f  ", name, $1 / n }' "$TMP/stat.csv")"
        hb_stop
        echo "$line"
        echo "    per request: $calls"
    done
done
