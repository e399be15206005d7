#!/usr/bin/env bash
# Where hookbridge's CPU goes per request: two wrk runs as in bench/run.sh,
# one under `perf record -g -a` (hookbridge's samples kept), one under
# `perf stat` counting its system calls and context switches. Prints, and
# writes to
# bench/results/<date>-<host>-profile-<sink>-<ack>.txt:
#   - CPU per request (all threads, until the sink has published everything);
#   - the top symbols, self cost (`perf report --no-children`), each as a share
#     and as microseconds per request;
#   - the same by library (kernel, libcrypto, jansson, ...);
#   - system calls and context switches per request.
#
#   bench/profile.sh [--sink file|kafka|redis] [--ack durable|written]
#                    [--workers N] [--conns N] [-d S] [--top N] [--out DIR]
#   bench/profile.sh --ceiling      the same for nginx + Lua, to compare
# Defaults: file, durable, 1 worker, 32 connections, 10 s, top 30.
# Kernel symbols are blurred on a VM without a PMU (cpu-clock samples land
# where interrupts are enabled again, e.g. finish_task_switch): trust the
# kernel's total and the system calls per request more than its symbols.
# KEEP_PERF=DIR keeps perf.data (and the pids) there.
# Needs root for perf on every thread (it installs linux-perf if missing).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=bench/lib.sh
. bench/lib.sh

sink=file ack=durable workers=1 conns=32 duration=10 top=30 outdir=bench/results
while (($#)); do
    case "$1" in
    --sink) sink="$2"; shift ;;
    --ack) ack="$2"; shift ;;
    --workers) workers="$2"; shift ;;
    --conns) conns="$2"; shift ;;
    -d | --duration) duration="$2"; shift ;;
    --top) top="$2"; shift ;;
    --ceiling) sink=ceiling ;;
    --out) outdir="$2"; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (try --help)" ;;
    esac
    shift
done
DRAIN_TIMEOUT="${DRAIN_TIMEOUT:-120}"

command -v perf >/dev/null || apt_install linux-perf
bench_setup

broker_pid="" brokers="" KAFKA_BASE=0
case "$sink" in
kafka)
    mock_start
    brokers="$MOCK_BROKERS" broker_pid="$MOCK_PID"
    ;;
redis)
    export HB_REDIS_DIR="$TMP/redis"
    REDIS_URL="$(tests/services/redis.sh start 2>/dev/null | sed -n 's/^REDIS_URL=//p')" || die "redis did not start"
    CLEANUP+=("HB_REDIS_DIR='$HB_REDIS_DIR' tests/services/redis.sh stop 2>/dev/null")
    REDIS_PORT="${REDIS_URL##*:}"
    broker_pid="$(cat "$HB_REDIS_DIR/redis.pid")"
    ;;
esac
if [[ "$sink" == ceiling ]]; then
    port="$(free_port)"
    nginx_start "$port"
    target_pids="$NGINX_PIDS" url="https://127.0.0.1:$port/webhooks/intercom" drain=0
    what="the ceiling (nginx 1 worker + Lua reading the body)" ack=""
else
    hb_start "$sink" "$ack" "$workers" "$brokers"
    target_pids="$HB_PID" url="https://127.0.0.1:$HB_PORT/webhooks/intercom" drain=1
    what="hookbridge, $sink sink, ack = $ack, workers = $workers"
fi
pid_list="${target_pids// /,}"

# The system calls worth counting on the request path.
calls=(epoll_wait epoll_ctl futex fdatasync fsync write writev pwrite64 pwritev read readv pread64
    preadv newfstat newfstatat lseek sendto sendmsg recvfrom recvmsg openat close renameat2
    rename fallocate ftruncate nanosleep clock_nanosleep poll ppoll eventfd2)
events="context-switches,cpu-migrations"
for c in "${calls[@]}"; do
    perf list "syscalls:sys_enter_$c" 2>/dev/null | grep -q "sys_enter_$c " && events="$events,syscalls:sys_enter_$c"
done

# Two passes, so that counting every system call (a tracepoint each) does not
# inflate the CPU per request the profile is scaled by. The warm-up runs
# before either pass, not inside them (measure's own, WARMUP=0 below): perf
# would count its requests and samples, and the per-request figures divide
# by the measured run's requests only.
warm_up "$url" "$conns" "$drain"
perf record -F 999 -g -a -o "$TMP/perf.data" >"$TMP/perf-record.log" 2>&1 &
rec_pid=$!
PIDS+=("$rec_pid")
sleep 1 # perf attaches to every thread before the load starts
# shellcheck disable=SC2086
read -r u0 k0 < <(user_sys_ticks $target_pids)
WARMUP=0 measure "$target_pids" "$broker_pid" "$url" "$conns" "$drain"
kill -INT "$rec_pid" 2>/dev/null || true
wait "$rec_pid" 2>/dev/null || true
forget_pid "$rec_pid"
# shellcheck disable=SC2086
read -r u1 k1 < <(user_sys_ticks $target_pids)
kernel_pct=$(( (k1 - k0) * 100 / (u1 - u0 + k1 - k0 > 0 ? u1 - u0 + k1 - k0 : 1) ))
rps="$W_rps" p50="$W_p50_ms" p99="$W_p99_ms" cpu="$CPU_US" others="$OTHERS_CORES"

perf stat -x, -e "$events" -p "$pid_list" -o "$TMP/perf-stat.csv" >/dev/null 2>&1 &
stat_pid=$!
PIDS+=("$stat_pid")
sleep 1
WARMUP=0 measure "$target_pids" "$broker_pid" "$url" "$conns" "$drain"
kill -INT "$stat_pid" 2>/dev/null || true
wait "$stat_pid" 2>/dev/null || true
forget_pid "$stat_pid"
if [[ "$sink" == ceiling ]]; then
    answered="$((W_requests - W_non2xx)) (wrk)"
    nginx_stop
else
    answered="$(hb_answered_200)"
    hb_stop
fi

# One listing of every symbol: "share% µs dso symbol". perf record ran on
# all CPUs (-a: per-thread events would tax hookbridge's every context
# switch), so the report keeps hookbridge's samples, as shares of its own.
perf report -i "$TMP/perf.data" --pid "$pid_list" --percentage relative --no-children \
    --sort dso,symbol --stdio -g none 2>/dev/null |
    awk -v cpu="$cpu" '/^#/ || NF < 3 { next }
        { pct = $1; sub(/%/, "", pct); dso = $2; $1 = ""; $2 = ""; $3 = ""; sym = substr($0, 4)
          sub(/( -)+$/, "", sym)
          printf "%6.2f%%  %6.2f µs  %-22s %s\n", pct, pct * cpu / 100, dso, sym }' >"$TMP/symbols"
[[ -s "$TMP/symbols" ]] || die "perf report gave no samples for pid $pid_list"
# The same samples by thread, and by thread and library: which stage of the
# pipeline (HTTP loop, journal writer, sink) pays for what.
perf report -i "$TMP/perf.data" --pid "$pid_list" --percentage relative --no-children \
    --sort comm,dso --stdio -g none 2>/dev/null |
    awk -v cpu="$cpu" '/^#/ || NF < 3 { next }
        { pct = $1; sub(/%/, "", pct)
          printf "%6.2f%%  %6.2f µs  %-16s %s\n", pct, pct * cpu / 100, $2, $3 }' >"$TMP/threads"

# KEEP_PERF=DIR keeps perf.data and the pids for further `perf report`s
# (e.g. --comm hb-sink-file --sort symbol).
if [[ -n "${KEEP_PERF:-}" ]]; then
    mkdir -p "$KEEP_PERF" && cp "$TMP/perf.data" "$KEEP_PERF/" && echo "$pid_list" >"$KEEP_PERF/pids"
fi
mkdir -p "$outdir"
out="$outdir/$(date -u +%Y%m%d-%H%M%S)-$(hostname -s)-profile-$sink${ack:+-$ack}.txt"
{
    echo "profile of $what: wrk -t1 -c$conns -d${duration}s"
    echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(date -u '+%F %H:%M') UTC, $NCPU cores, shared machine (others used $others cores during the run)"
    echo "under perf record: req/s $rps, p50 $p50 ms, p99 $p99 ms; both passes: answered $answered, published $PUBLISHED"
    echo "CPU per request, all threads, until drained: $cpu µs (under perf record), $kernel_pct % of it in the kernel (stime in /proc/PID/stat)"
    echo
    echo "== top symbols, self cost (perf report --no-children), share of the server's samples and µs per request"
    sed -n "1,${top}p" "$TMP/symbols"
    echo
    echo "== by library (the sum of its symbols)"
    awk '{ s[$4] += $1 } END { for (d in s) printf "%6.2f%%  %6.2f µs  %s\n", s[d], s[d] * cpu / 100, d }' \
        cpu="$cpu" "$TMP/symbols" | sort -rn
    echo
    echo "== the top 6 symbols of each library above 2 %"
    awk '{ s[$4] += $1 } END { for (d in s) if (s[d] >= 2) print d }' "$TMP/symbols" |
        while read -r dso; do
            echo "-- $dso"
            awk -v d="$dso" '$4 == d' "$TMP/symbols" | sed -n 1,6p
        done
    echo
    echo "== by thread (the sum of its libraries), then each thread's libraries above 1 %"
    awk '{ s[$4] += $1 } END { for (t in s) printf "%6.2f%%  %6.2f µs  %s\n", s[t], s[t] * cpu / 100, t }' \
        cpu="$cpu" "$TMP/threads" | sort -rn
    awk '$1 + 0 >= 1' "$TMP/threads"
    echo
    echo "== per request (perf stat over all threads, a second pass of ${duration}s)"
    awk -F, -v n="$W_requests" '$1 ~ /^[0-9.]+$/ && $3 != "" {
            name = $3; sub(/^syscalls:sys_enter_/, "", name)
            if ($1 > 0) printf "%8.3f  %s\n", $1 / n, name }' "$TMP/perf-stat.csv" | sort -rn
} >"$out"
cat "$out"
log "written to $out"
