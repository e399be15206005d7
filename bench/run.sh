#!/usr/bin/env bash
# One command for the whole benchmark (see bench/README.md):
#
#   - the ceiling: nginx, 1 worker, with the Lua module reading the body and
#     answering 200 over the same TLS (TLS 1.3, one P-256 certificate for both);
#   - hookbridge with the file, Kafka and Redis sinks, ack = durable and
#     written, 32 and 256 connections, workers = 1 and 2. Kafka is librdkafka's
#     mock cluster (bench/mock_kafka.c: no JVM competing for the cores), Redis
#     is Debian's redis-server on a free loopback port;
#   - wrk -t1 over TLS keep-alive posting a signed 1.5 KB Intercom
#     notification (bench/body.json, bench/post.lua), a fixed time per run.
#
# Every run goes to one results file, bench/results/<date>-<host>[-tag].md,
# and a machine-readable .tsv next to it: req/s, p50, p99, errors, server
# CPU per request over all of the server's threads, peak RSS, answered 200 vs
# published, and the ratios to the ceiling measured in the same invocation.
#
#   bench/run.sh [options]
#     -q, --quick          3 s per run, one round
#     -d, --duration S     seconds per run (default 10)
#     --warmup S           seconds of the same load before each run, not
#                          measured (default 3; 0 for none): the running
#                          bridge's figures, not those of its first seconds
#     --rounds N           times the whole matrix runs (default 2; the tables
#                          show medians, the .tsv every run). The ceiling runs
#                          at the start of every round and once more at the end
#     --sinks LIST         file,kafka,redis (default all three)
#     --acks LIST          durable,written (default both; published also works)
#     --conns LIST         32,256 (default)
#     --workers LIST       1,2 (default)
#     --real-kafka         also run kafka, ack = durable, against a real broker
#                          (tests/services/kafka.sh, a JVM) "for the record"
#     --no-ceiling         skip nginx (no ratios)
#     --paired             also run the ceiling right before every hookbridge
#                          run, at the same connections, and give each run's
#                          ratios against that run: the machine's speed drifts
#                          by a third within minutes here, and a pair 20 s
#                          apart shares more of it than a round does. Doubles
#                          the time; the tables then show medians of the
#                          per-run ratios. Not with --no-ceiling
#     --tag NAME           appended to the results file name (e.g. before)
#     --out DIR            results directory (default bench/results)
#   Environment: BUILD_DIR (default build), HB_BIN (default $BUILD_DIR/hookbridge),
#   BENCH_TMPDIR (default /var/tmp: the journal must be on a real disk, not tmpfs),
#   DRAIN_TIMEOUT (default 120 s).
#
# Needs root (or the tools already installed) on Debian: it installs wrk,
# nginx, libnginx-mod-http-lua, redis-server, redis-tools, openssl, curl,
# pkg-config, librdkafka-dev when they are missing, without starting any
# system service. Everything it starts runs under a private temp dir on
# loopback ports and is stopped on exit.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=bench/lib.sh
. bench/lib.sh

duration=10
quick=0
rounds=2
sinks=file,kafka,redis
acks=durable,written
conns_list=32,256
workers_list=1,2
real_kafka=0
ceiling=1
paired=0
tag=""
outdir=bench/results
while (($#)); do
    case "$1" in
    -q | --quick) quick=1 duration=3 rounds=1 WARMUP=1 ;;
    --rounds) rounds="$2"; shift ;;
    -d | --duration) duration="$2"; shift ;;
    --warmup) WARMUP="$2"; shift ;;
    --sinks) sinks="$2"; shift ;;
    --acks) acks="$2"; shift ;;
    --conns) conns_list="$2"; shift ;;
    --workers) workers_list="$2"; shift ;;
    --real-kafka) real_kafka=1 ;;
    --no-ceiling) ceiling=0 ;;
    --paired) paired=1 ;;
    --tag) tag="-$2"; shift ;;
    --out) outdir="$2"; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (try --help)" ;;
    esac
    shift
done
# a pair is a ceiling run: without the ceiling --paired would be ignored
if ((paired && !ceiling)); then die "--paired needs the ceiling (not with --no-ceiling)"; fi
IFS=, read -ra SINKS <<<"$sinks"
IFS=, read -ra ACKS <<<"$acks"
IFS=, read -ra CONNS <<<"$conns_list"
IFS=, read -ra WORKERS <<<"$workers_list"
DRAIN_TIMEOUT="${DRAIN_TIMEOUT:-120}"

bench_setup # tools, build, temp dir, certificate, body, signature, trap

# Redis once for the whole matrix: FLUSHALL between runs.
redis_pid=""
if [[ " ${SINKS[*]} " == *" redis "* ]]; then
    export HB_REDIS_DIR="$TMP/redis"
    REDIS_URL="$(tests/services/redis.sh start 2>"$TMP/redis-start.log" | sed -n 's/^REDIS_URL=//p')" \
        || { cat "$TMP/redis-start.log" >&2; die "redis did not start"; }
    CLEANUP+=("HB_REDIS_DIR='$HB_REDIS_DIR' tests/services/redis.sh stop 2>/dev/null")
    redis_pid="$(cat "$HB_REDIS_DIR/redis.pid")"
    REDIS_PORT="${REDIS_URL##*:}"
fi

stamp="$(date -u +%Y%m%d-%H%M%S)"
mkdir -p "$outdir"
RES_MD="$outdir/$stamp-$(hostname -s)$tag.md"
RES_TSV="${RES_MD%.md}.tsv"
# The .tsv's columns, in the order record() writes them.
printf '%s\t' round server sink ack workers conns duration_s requests rps p50_ms p99_ms max_ms \
    errors non2xx answered_200 published status cpu_us_per_req broker_cpu_us_per_req \
    peak_rss_mb drain_s wrk_cores others_cores sync_us batch queue_us handoff_us pair_rps \
    pair_cpu_us slow_syncs >"$RES_TSV"
echo note >>"$RES_TSV"

# ---------------------------------------------------------------- the runs

# run_ceiling CONNS
run_ceiling() {
    local c="$1" port
    port="$(free_port)"
    nginx_start "$port"
    measure "$NGINX_PIDS" "" "https://127.0.0.1:$port/webhooks/intercom" "$c" 0
    nginx_stop
    record ceiling nginx+lua - 1 "$c" $((W_requests - W_non2xx)) ""
    PAIR_RPS="$W_rps" PAIR_CPU="$CPU_US"
}

# run_bridge SINK ACK WORKERS CONNS [real]
run_bridge() {
    local sink="$1" ack="$2" w="$3" c="$4" real="${5:-}" brokers="" broker_pid="" note=""
    local pair_rps=- pair_cpu=-
    if ((ceiling && paired)); then
        run_ceiling "$c"
        pair_rps="$PAIR_RPS" pair_cpu="$PAIR_CPU"
    fi
    KAFKA_BASE=0
    case "$sink" in
    kafka)
        if [[ -n "$real" ]]; then
            brokers="$KAFKA_REAL"
            broker_pid="$(cat "$HB_KAFKA_DIR/kafka.pid")"
            KAFKA_BASE="$(kafka_count "$brokers" || echo 0)"
            note="real broker (JVM)"
        else
            mock_start
            brokers="$MOCK_BROKERS" broker_pid="$MOCK_PID"
            note="mock cluster"
        fi
        ;;
    redis)
        redis-cli -p "$REDIS_PORT" flushall >/dev/null
        broker_pid="$redis_pid"
        ;;
    esac
    hb_start "$sink" "$ack" "$w" "$brokers"
    measure "$HB_PID" "$broker_pid" "https://127.0.0.1:$HB_PORT/webhooks/intercom" "$c" 1
    local answered="$ANSWERED"
    ((LATE_200 == 0)) || note="${note:+$note, }$LATE_200 answered after wrk stopped"
    if [[ "$sink" == kafka && -z "$real" ]]; then
        local dl
        dl="$(kafka_count "$brokers" intercom.dead-letter || echo '?')"
        [[ "$dl" == 0 ]] || note="$note, $dl dead-lettered"
    fi
    hb_stop
    [[ "$sink" == kafka && -z "$real" ]] && mock_stop
    RUN_FAILED="$HB_FAILED"
    if [[ -n "$RUN_FAILED" ]]; then
        # Keep the evidence next to the results.
        local keep="${RES_MD%.md}-r$round-$sink-$ack-w$w-c$c.log"
        cp "$TMP/hb/log" "$keep"
        note="$note; hookbridge $RUN_FAILED during the run, log in $keep"
        log "!!!!! hookbridge $RUN_FAILED: $sink ack=$ack workers=$w c=$c (log: $keep)"
    fi
    PAIR_RPS="$pair_rps" PAIR_CPU="$pair_cpu"
    record "hookbridge${real:+-real-kafka}" "$sink" "$ack" "$w" "$c" "$answered" "$note"
}

# record SERVER SINK ACK WORKERS CONNS ANSWERED_200 NOTE: one row of the .tsv
# (columns as in the header printed above the runs) from the last measure, and a line of progress.
record() {
    local server="$1" sink="$2" ack="$3" w="$4" c="$5" answered="$6" note="$7" status=-
    # a ceiling row has no pair; a bridge row's is set by run_bridge
    [[ "$server" == ceiling ]] && PAIR_RPS=- PAIR_CPU=-
    if [[ "$PUBLISHED" != - ]]; then
        status=ok
        ((PUBLISHED >= answered)) || status="LOST_$((answered - PUBLISHED))"
    fi
    [[ -n "${RUN_FAILED:-}" ]] && status="$RUN_FAILED"
    RUN_FAILED=""
    printf '%s\t' "$round" "$server" "$sink" "$ack" "$w" "$c" "$duration" "$W_requests" "$W_rps" \
        "$W_p50_ms" "$W_p99_ms" "$W_max_ms" "$W_errors" "$W_non2xx" "$answered" "$PUBLISHED" \
        "$status" "$CPU_US" "$BROKER_US" "$(awk -v k="$RSS_KB" 'BEGIN { printf "%.1f", k / 1024 }')" \
        "$DRAIN_S" "$WRK_CORES" "$OTHERS_CORES" "$SYNC_US" "$BATCH" "$QUEUE_US" "$HANDOFF_US" "${PAIR_RPS:--}" "${PAIR_CPU:--}" "${SLOW_SYNCS:--}" >>"$RES_TSV"
    printf '%s\n' "$note" >>"$RES_TSV"
    ((++done_runs))
    log "[$done_runs/$total] $server $sink ack=$ack workers=$w c=$c: $W_rps req/s, p99 $W_p99_ms ms," \
        "$CPU_US us/req, answered $answered, published $PUBLISHED ($status), others $OTHERS_CORES cores"
    [[ "$status" == LOST* ]] && log "!!!!! LOST: $server $sink ack=$ack workers=$w c=$c answered $answered 200s but published $PUBLISHED !!!!!"
    return 0
}

done_runs=0
total=$(( rounds * ((${#SINKS[@]} * ${#ACKS[@]} * ${#WORKERS[@]} * ${#CONNS[@]} \
    + (real_kafka ? ${#WORKERS[@]} : 0)) * (ceiling && paired ? 2 : 1) \
    + (ceiling ? ${#CONNS[@]} : 0)) \
    + (ceiling && rounds > 1 ? ${#CONNS[@]} : 0) ))
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
log "$total runs of ${duration}s each; results in $RES_MD"
START_S=$SECONDS

# The real broker runs only for its own runs: an idle JVM still takes CPU.
if ((real_kafka)); then
    export HB_KAFKA_DIR="$TMP/kafka"
    CLEANUP+=("HB_KAFKA_DIR='$HB_KAFKA_DIR' tests/services/kafka.sh stop 2>/dev/null")
fi
for ((round = 1; round <= rounds; round++)); do
    if ((ceiling)); then
        for c in "${CONNS[@]}"; do run_ceiling "$c"; done
    fi
    for sink in "${SINKS[@]}"; do
        for ack in "${ACKS[@]}"; do
            for w in "${WORKERS[@]}"; do
                for c in "${CONNS[@]}"; do run_bridge "$sink" "$ack" "$w" "$c"; done
            done
        done
    done
    if ((real_kafka)); then
        KAFKA_REAL="$(tests/services/kafka.sh start 2>"$TMP/kafka-start.log" | sed -n 's/^KAFKA_BROKERS=//p')" \
            || { cat "$TMP/kafka-start.log" >&2; die "kafka did not start"; }
        for w in "${WORKERS[@]}"; do run_bridge kafka durable "$w" 32 real; done
        tests/services/kafka.sh stop 2>/dev/null || true
    fi
done
# The ceiling once more at the end: the machine is shared, so the ratios use
# the median of the ceiling's runs spread over the whole benchmark.
if ((ceiling && rounds > 1)); then
    round=end
    for c in "${CONNS[@]}"; do run_ceiling "$c"; done
fi

{
    echo "# hookbridge benchmark, $(date -u '+%F %H:%M') UTC, $(hostname -s)"
    echo
    echo "$(describe_setup)"
    echo
    echo "Load average at the start: $LOAD_START; at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo
    bench/report.sh "$RES_TSV"
} >"$RES_MD"
cat "$RES_MD"
log "done in $((SECONDS - START_S)) s: $RES_MD and $RES_TSV"
if grep -qE $'\t(LOST|DIED|EXIT)_' "$RES_TSV"; then
    log "LOST or DIED: some run lost deliveries or hookbridge did not survive it (see the table)"
    exit 3
fi
