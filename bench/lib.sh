# Shared by bench/run.sh and bench/profile.sh (sourced, not run): tools,
# temp dir, certificate, the servers under test, and the measurements.
# shellcheck shell=bash

log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

CLK_TCK="$(getconf CLK_TCK)"
NCPU="$(nproc)"
BUILD_DIR="${BUILD_DIR:-build}"
HB_BIN="${HB_BIN:-$BUILD_DIR/hookbridge}"
SECRET=test_intercom_client_secret
BODY=bench/body.json
NGINX_MODULES=/usr/lib/nginx/modules

# Commands run by the EXIT trap, last first; pids killed before them.
CLEANUP=()
PIDS=()
POLICY_RC_CREATED=0

cleanup() {
    local pid i
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    for ((i = ${#CLEANUP[@]} - 1; i >= 0; i--)); do eval "${CLEANUP[i]}" || true; done
    ((POLICY_RC_CREATED)) && rm -f /usr/sbin/policy-rc.d
    [[ -n "${TMP:-}" && -d "$TMP" ]] && rm -rf "$TMP"
}

# From the start: even apt_install's policy-rc.d is removed on any exit.
trap cleanup EXIT
trap 'exit 130' INT TERM

forget_pid() {
    local p keep=()
    for p in "${PIDS[@]}"; do [[ "$p" == "$1" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

# apt_install PKG...: as root on Debian, without starting any service the
# packages bring (nginx's postinst would otherwise start the system nginx).
apt_install() {
    [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null ||
        die "missing: $* (install them: apt-get install -y $*)"
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\n# bench/run.sh: start no service while installing\nexit 101\n' \
            >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        POLICY_RC_CREATED=1
    fi
    log "installing Debian packages: $*"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "$@" </dev/null >&2 ||
        { apt-get update -q </dev/null >&2 &&
            apt-get install -y -q --no-install-recommends "$@" </dev/null >&2; } ||
        die "could not install $*"
    if ((POLICY_RC_CREATED)); then
        rm -f /usr/sbin/policy-rc.d
        POLICY_RC_CREATED=0
    fi
    hash -r
}

# need_tools: every tool the benchmark uses, installing what is missing:
# first what hookbridge builds with (the project's own script), then ours.
need_tools() {
    scripts/install-deps.sh >&2
    local missing=() pair had_nginx=1
    for pair in wrk:wrk nginx:nginx redis-server:redis-server redis-cli:redis-tools; do
        command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
    done
    [[ -f "$NGINX_MODULES/ngx_http_lua_module.so" ]] || missing+=(libnginx-mod-http-lua)
    command -v nginx >/dev/null || had_nginx=0
    ((${#missing[@]} == 0)) || apt_install "${missing[@]}"
    # The package enables nginx.service for the next boot (policy-rc.d only
    # kept it from starting): a benchmark leaves no web server behind.
    if ((!had_nginx)) && [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
        systemctl disable --now nginx >/dev/null 2>&1 || true
    fi
}

# children_of PID: the pids whose parent is PID (no procps needed).
children_of() {
    local parent="$1" d line
    local -a f
    for d in /proc/[0-9]*; do
        read -r line <"$d/stat" 2>/dev/null || continue
        read -ra f <<<"${line##*) }" # state, ppid, ...
        [[ "${f[1]}" == "$parent" ]] && echo "${d#/proc/}"
    done
    return 0
}

# alive PID: running, and not a zombie (kill -0 succeeds on a zombie).
alive() {
    local st
    st="$(awk '/^State:/ {print $2}' "/proc/$1/status" 2>/dev/null)" || return 1
    [[ -n "$st" && "$st" != Z ]]
}

# Prints a free loopback port (bind-then-release race accepted).
free_port() {
    if command -v python3 >/dev/null && python3 -c '
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])' 2>/dev/null; then
        return 0
    fi
    local p
    for _ in $(seq 500); do
        p=$((20000 + RANDOM % 40000))
        (: <"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return 0; }
    done
    die "found no free loopback port"
}

# build_all: hookbridge (an optimized, non-sanitized build) and the mock broker.
build_all() {
    if [[ -z "${HB_BIN_GIVEN:-}" ]]; then
        if [[ ! -f "$BUILD_DIR/CMakeCache.txt" ]]; then
            BUILD_DIR="$BUILD_DIR" scripts/build.sh >&2
        fi
        if grep -q '^HB_SANITIZE:BOOL=ON' "$BUILD_DIR/CMakeCache.txt"; then
            die "$BUILD_DIR is a sanitizer build: benchmark an optimized one (BUILD_DIR=build-bench)"
        fi
        cmake --build "$BUILD_DIR" --target hookbridge >&2
    fi
    [[ -x "$HB_BIN" ]] || die "no hookbridge binary at $HB_BIN"
    MOCK_BIN="$BUILD_DIR/bench/mock_kafka"
    if [[ ! -x "$MOCK_BIN" || bench/mock_kafka.c -nt "$MOCK_BIN" ]]; then
        mkdir -p "$BUILD_DIR/bench"
        # shellcheck disable=SC2046
        cc -std=c11 -O2 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -o "$MOCK_BIN" bench/mock_kafka.c $(pkg-config --cflags --libs rdkafka) ||
            die "could not build bench/mock_kafka.c"
    fi
}

bench_setup() {
    [[ -n "${HB_BIN_GIVEN:-}" || "$HB_BIN" != "$BUILD_DIR/hookbridge" ]] && HB_BIN_GIVEN=1
    need_tools
    build_all
    TMP="$(mktemp -d "${BENCH_TMPDIR:-/var/tmp}/hb-bench.XXXXXX")"
    # nginx's worker runs as nobody when started by root.
    chmod 755 "$TMP"
    if [[ "$(stat -f -c %T "$TMP")" == tmpfs ]]; then
        log "warning: $TMP is on tmpfs, fdatasync costs nothing there; set BENCH_TMPDIR to a disk"
    fi
    # One certificate for both servers, the kind hookbridge generates itself:
    # a self-signed P-256 key.
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj /CN=127.0.0.1 -keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>/dev/null ||
        die "openssl could not make a certificate"
    chmod 644 "$TMP/key.pem"
    SIGNATURE="sha1=$(openssl dgst -sha1 -hmac "$SECRET" <"$BODY" | sed 's/^.* //')"
    export BODY_FILE="$ROOT/$BODY" SIGNATURE
}

# ---------------------------------------------------------------- servers

nginx_start() {
    local port="$1" dir="$TMP/nginx"
    mkdir -p "$dir/logs"
    cat >"$dir/nginx.conf" <<EOF
# bench/run.sh: the ceiling. One worker; Lua reads the whole body and answers
# 200 with hookbridge's reply, over the same TLS as hookbridge.
daemon off;
master_process on;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
load_module $NGINX_MODULES/ndk_http_module.so;
load_module $NGINX_MODULES/ngx_http_lua_module.so;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    # wrk keeps its connections for the whole run, as it does with hookbridge.
    keepalive_requests 100000000;
    keepalive_timeout 60s;
    server {
        listen 127.0.0.1:$port ssl;
        ssl_certificate $TMP/cert.pem;
        ssl_certificate_key $TMP/key.pem;
        ssl_protocols TLSv1.3;
        location = /webhooks/intercom {
            client_max_body_size 1m;
            client_body_buffer_size 1m;
            content_by_lua_block {
                ngx.req.read_body()
                local body = ngx.req.get_body_data()
                if not body then return ngx.exit(400) end
                ngx.header["Content-Type"] = "application/json"
                ngx.print('{"status":"accepted"}')
            }
        }
    }
}
EOF
    nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log" </dev/null >>"$dir/logs/stdout" 2>&1 &
    NGINX_MASTER=$!
    PIDS+=("$NGINX_MASTER")
    wait_https "$port" || { tail -n 20 "$dir/logs/error.log" "$dir/logs/stdout" >&2; die "nginx did not start"; }
    local worker
    for _ in $(seq 50); do
        worker="$(children_of "$NGINX_MASTER" | sed -n 1p)"
        [[ -n "$worker" ]] && break
        sleep 0.1
    done
    [[ -n "$worker" ]] || die "nginx has no worker"
    NGINX_PIDS="$NGINX_MASTER $worker"
    [[ -n "${TLS_NGINX:-}" ]] || TLS_NGINX="$(tls_info "$port")"
}

nginx_stop() {
    kill -QUIT "$NGINX_MASTER" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$NGINX_MASTER" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$NGINX_MASTER" 2>/dev/null || true
    wait "$NGINX_MASTER" 2>/dev/null || true
    forget_pid "$NGINX_MASTER"
}

# wait_https PORT: until the endpoint answers over TLS (any HTTP status).
wait_https() {
    for _ in $(seq 300); do
        curl -sk --max-time 2 -o /dev/null "https://127.0.0.1:$1/" && return 0
        sleep 0.1
    done
    return 1
}

# tls_info PORT: "TLSv1.3 TLS_AES_256_GCM_SHA384 X25519" as wrk's OpenSSL negotiates it.
tls_info() {
    { openssl s_client -connect "127.0.0.1:$1" </dev/null 2>/dev/null || true; } |
        awk '/^New, / {gsub(",", ""); p = $2; c = $5}
             /Server Temp Key:/ {sub(/.*Key: /, ""); sub(/,.*/, ""); k = $0}
             END {print p, c, k}'
}

mock_start() {
    local out="$TMP/mock.out"
    : >"$out"
    "$MOCK_BIN" serve intercom.contact.user.created intercom.dead-letter >"$out" 2>"$TMP/mock.err" &
    MOCK_PID=$!
    PIDS+=("$MOCK_PID")
    for _ in $(seq 100); do grep -q '^KAFKA_BROKERS=' "$out" && break; sleep 0.05; done
    MOCK_BROKERS="$(sed -n 's/^KAFKA_BROKERS=//p' "$out")"
    [[ -n "$MOCK_BROKERS" ]] || { cat "$TMP/mock.err" >&2; die "mock Kafka cluster did not start"; }
}

mock_stop() {
    kill -TERM "$MOCK_PID" 2>/dev/null || true
    wait "$MOCK_PID" 2>/dev/null || true
    forget_pid "$MOCK_PID"
}

# kafka_count BROKERS [TOPIC]: messages on the topic (sum of high watermarks).
kafka_count() {
    "$MOCK_BIN" count "$1" "${2:-intercom.contact.user.created}" 2>/dev/null
}

# hb_start SINK ACK WORKERS BROKERS: a fresh hookbridge with a fresh journal.
hb_start() {
    local sink="$1" ack="$2" w="$3" brokers="$4" dir="$TMP/hb"
    rm -rf "$dir"
    mkdir -p "$dir"
    HB_PORT="$(free_port)"
    HB_ADMIN="$(free_port)"
    while [[ "$HB_ADMIN" == "$HB_PORT" ]]; do HB_ADMIN="$(free_port)"; done
    cat >"$dir/hb.conf" <<EOF
listen = 127.0.0.1:$HB_PORT
admin.listen = 127.0.0.1:$HB_ADMIN
tls.cert = $TMP/cert.pem
tls.key = $TMP/key.pem
tls.min_version = 1.3
data.dir = $dir
journal.dir = $dir/journal
journal.max_bytes = 8g
file.path = $dir/events.jsonl
intercom.secret = $SECRET
sinks = $sink
ack = $ack
workers = $w
# Every request carries the same notification id: with dedup on, all but the
# first would be answered "duplicate" without being journaled.
dedup = off
log.level = warn
EOF
    [[ "$sink" == kafka ]] && echo "kafka.brokers = $brokers" >>"$dir/hb.conf"
    if [[ "$sink" == redis ]]; then
        echo "redis.url = $REDIS_URL" >>"$dir/hb.conf"
        echo "redis.maxlen = 0" >>"$dir/hb.conf"
    fi
    HB_SINK="$sink" HB_BROKERS="$brokers"
    "$HB_BIN" -c "$dir/hb.conf" </dev/null 2>"$dir/log" &
    HB_PID=$!
    PIDS+=("$HB_PID")
    local up=0
    for _ in $(seq 300); do
        alive "$HB_PID" || { tail -n 20 "$dir/log" >&2; die "hookbridge exited at start"; }
        if curl -fs --max-time 2 -o /dev/null "http://127.0.0.1:$HB_ADMIN/readyz"; then up=1; break; fi
        sleep 0.1
    done
    ((up)) || log "warning: hookbridge not ready after 30 s ($sink): $(curl -s --max-time 5 "http://127.0.0.1:$HB_ADMIN/readyz")"
    [[ -n "${TLS_HB:-}" ]] || TLS_HB="$(tls_info "$HB_PORT")"
}

# hb_stop: SIGTERM, and how it ended: HB_FAILED is empty after a clean exit,
# else DIED_<signal> (it was gone before we stopped it) or EXIT_<status>.
hb_stop() {
    local was_alive=1 rc=0
    alive "$HB_PID" || was_alive=0
    kill -TERM "$HB_PID" 2>/dev/null || true
    for _ in $(seq 300); do alive "$HB_PID" || break; sleep 0.1; done
    kill -KILL "$HB_PID" 2>/dev/null || true
    wait "$HB_PID" 2>/dev/null || rc=$?
    forget_pid "$HB_PID"
    HB_FAILED=""
    if ((!was_alive)); then
        HB_FAILED="DIED_$( ((rc > 128)) && kill -l $((rc - 128)) || echo "exit$rc")"
    elif ((rc != 0)); then
        HB_FAILED="EXIT_$rc"
    fi
    if grep -qiE 'error|fatal' "$TMP/hb/log"; then
        log "hookbridge logged errors ($HB_SINK):"
        # (no `head`: with pipefail its early exit would fail the pipeline)
        grep -iE 'error|fatal' "$TMP/hb/log" | sort | uniq -c | sort -rn | sed -n 1,5p >&2 || true
    fi
    return 0
}

# (|| true: under set -e and pipefail, a failed read must not end the run)
# Bounded: a bridge that stopped answering must not hang the run (the
# callers treat an empty answer as "no figures").
hb_metrics() { curl -fs --max-time 10 "http://127.0.0.1:$HB_ADMIN/metrics" 2>/dev/null || true; }

# The bridge's own count of 200s on the webhook route, empty if it has none.
hb_answered_200() {
    # awk reads to the end: an early exit would make curl fail on a closed pipe.
    hb_metrics | awk '/^hookbridge_requests_total\{route="intercom",status="200"\}/ && !n++ {print $2}'
}

# journal_sums: "fdatasync_seconds_sum fdatasync_count records_sum batches
# queue_seconds_sum queue_count handoff_seconds_sum handoff_count
# fdatasyncs_up_to_100ms" from the
# bridge's /metrics; nothing when it has no fdatasync count (or no /metrics
# answered), so that a missing "before" is not taken for zero. (A bridge
# without the queue and hand-off histograms gives 0 0 for them.)
journal_sums() {
    hb_metrics | awk '
        /^hookbridge_journal_fdatasync_seconds_sum / { s = $2 }
        /^hookbridge_journal_fdatasync_seconds_count / { sc = $2 }
        /^hookbridge_journal_batch_records_sum / { r = $2 }
        /^hookbridge_journal_batch_records_count / { rc = $2 }
        /^hookbridge_journal_queue_seconds_sum / { q = $2 }
        /^hookbridge_journal_queue_seconds_count / { qc = $2 }
        /^hookbridge_journal_handoff_seconds_sum / { h = $2 }
        /^hookbridge_journal_handoff_seconds_count / { hc = $2 }
        /^hookbridge_journal_fdatasync_seconds_bucket\{le="0.1"\} / { f = $2 }
        END { if (sc != "") printf "%s %s %s %s %s %s %s %s %s\n", s + 0, sc + 0, r + 0, rc + 0,
                  q + 0, qc + 0, h + 0, hc + 0, f == "" ? "-" : f + 0 }'
}

# What reached the sink, counted at the sink, not by the bridge.
published_count() {
    case "$HB_SINK" in
    file) if [[ -f "$TMP/hb/events.jsonl" ]]; then wc -l <"$TMP/hb/events.jsonl"; else echo 0; fi ;;
    redis) redis-cli -p "$REDIS_PORT" xlen intercom:k7x2m9pw:contact.user.created ;;
    kafka) echo $(($(kafka_count "$HB_BROKERS" || echo 0) - KAFKA_BASE)) ;;
    esac
}

# ---------------------------------------------------------------- measuring

# proc_ticks PID...: utime + stime of whole processes (every thread, living
# or exited), in clock ticks.
proc_ticks() {
    local pid s=0 f
    for pid in "$@"; do
        [[ -n "$pid" && -r "/proc/$pid/stat" ]] || continue
        f="$(cat "/proc/$pid/stat")"
        f="${f##*) }" # the name may hold spaces; fields after it are plain
        local -a a
        read -ra a <<<"$f"
        s=$((s + a[11] + a[12]))
    done
    echo "$s"
}

# user_sys_ticks PID...: "utime stime" summed over whole processes.
user_sys_ticks() {
    local pid f u=0 k=0
    local -a a
    for pid in "$@"; do
        f="$(cat "/proc/$pid/stat")"
        read -ra a <<<"${f##*) }"
        u=$((u + a[11])) k=$((k + a[12]))
    done
    echo "$u $k"
}

# hwm_kb PID...: summed peak RSS (VmHWM).
hwm_kb() {
    local pid s=0 v
    for pid in "$@"; do
        v="$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)"
        s=$((s + ${v:-0}))
    done
    echo "$s"
}

# Busy ticks of the whole machine (all CPUs, everything but idle and iowait).
machine_busy_ticks() {
    awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat
}

# CPU time of this shell's waited-for children, in ticks. bash's `times`
# must run in this shell, not in a $(...) subshell (which has no children
# yet), so it writes to a file.
children_ticks() {
    times >"$TMP/times"
    awk -v hz="$CLK_TCK" 'NR == 2 {
        t = 0
        for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] }
        printf "%d\n", t * hz + 0.5 }' "$TMP/times"
}

now_ns() { date +%s%N; }

# warm_up URL CONNS DRAIN(0|1): WARMUP seconds of the same load, not
# measured, for every server alike. A bridge that has run for a while has
# its next journal segment ready and recycles published ones; a fresh one
# spends its first second or so zero-filling its first spare segment while
# its active one grows (each fdatasync then commits the file's size too).
# The figures are meant to be the running bridge's, so the measured run
# starts after that, and (for the bridge) once the sink has published what
# the warm-up sent, so that none of its CPU is counted in the run.
WARMUP="${WARMUP:-3}"
warm_up() {
    local url="$1" conns="$2" drain="$3" start=$SECONDS
    ((WARMUP > 0)) || return 0
    wrk -t1 -c"$conns" -d"${WARMUP}s" --timeout 10s -s bench/post.lua "$url" >/dev/null 2>&1 || true
    ((drain)) || return 0
    local answered prev=""
    while ((SECONDS - start < DRAIN_TIMEOUT)); do
        answered="$(hb_answered_200)"
        [[ -n "$answered" && "$answered" == "$prev" ]] && (($(published_count) >= answered)) && break
        prev="$answered"
        sleep 0.25
    done
}

# measure SERVER_PIDS BROKER_PID URL CONNS DRAIN(0|1): one wrk run, then (for
# the bridge) the wait until the sink has everything, with the server's CPU
# counted over both. Sets W_* (wrk's figures), ANSWERED, PUBLISHED, DRAIN_S, CPU_US,
# BROKER_US, RSS_KB, OTHERS_CORES, WRK_CORES, and (for the bridge) SYNC_US, BATCH,
# QUEUE_US, HANDOFF_US, SLOW_SYNCS.
measure() {
    local server_pids="$1" broker_pid="$2" url="$3" conns="$4" drain="$5"
    # shellcheck disable=SC2086
    local s0 b0 m0 c0 t0 s1 b1 m1 c1 t1 s2 b2 out
    warm_up "$url" "$conns" "$drain"
    s0=$(proc_ticks $server_pids) b0=$(proc_ticks $broker_pid)
    m0=$(machine_busy_ticks)
    children_ticks >"$TMP/c0"
    local j0="" j1=""
    ((drain)) && j0="$(journal_sums)"
    t0=$(now_ns)
    out="$(wrk -t1 -c"$conns" -d"${duration}s" --timeout 10s -s bench/post.lua "$url" 2>&1)" || true
    t1=$(now_ns)
    ((drain)) && j1="$(journal_sums)"
    children_ticks >"$TMP/c1"
    m1=$(machine_busy_ticks)
    c0=$(cat "$TMP/c0") c1=$(cat "$TMP/c1")
    s1=$(proc_ticks $server_pids) b1=$(proc_ticks $broker_pid)
    local result
    result="$(sed -n 's/^RESULT //p' <<<"$out")"
    [[ -n "$result" ]] || { printf '%s\n' "$out" >&2; die "wrk gave no result against $url"; }
    local kv
    for kv in $result; do printf -v "W_${kv%%=*}" '%s' "${kv#*=}"; done
    # Cores used by the rest of the machine (the other agents) while wrk ran.
    OTHERS_CORES="$(awk -v m=$((m1 - m0)) -v s=$((s1 - s0)) -v b=$((b1 - b0)) -v c=$((c1 - c0)) \
        -v ns=$((t1 - t0)) -v hz="$CLK_TCK" 'BEGIN {
            o = (m - s - b - c) / hz / (ns / 1e9); if (o < 0) o = 0; printf "%.2f", o }')"
    WRK_CORES="$(awk -v c=$((c1 - c0)) -v ns=$((t1 - t0)) -v hz="$CLK_TCK" \
        'BEGIN { printf "%.2f", c / hz / (ns / 1e9) }')"
    # The journal while wrk ran: the mean fdatasync, records per batch, and
    # per record the mean wait for the writer and hand-off back.
    # SLOW_SYNCS: how many of those fdatasyncs took over 100 ms (a
    # stalled disk shows in the p99 of every connection at once).
    SYNC_US="-" BATCH="-" QUEUE_US="-" HANDOFF_US="-" SLOW_SYNCS="-"
    if [[ -n "$j0" && -n "$j1" ]]; then
        read -r SYNC_US BATCH QUEUE_US HANDOFF_US SLOW_SYNCS < <(awk -v a="$j0" -v b="$j1" '
            function mean_us(i) { d = y[i + 1] - x[i + 1]; return d > 0 ? sprintf("%.0f", (y[i] - x[i]) / d * 1e6) : "-" }
            BEGIN {
            split(a, x, " "); split(b, y, " "); n = y[2] - x[2]
            if (n > 0) printf "%.0f %.1f %s %s %s\n", (y[1] - x[1]) / n * 1e6, (y[3] - x[3]) / n, mean_us(5), mean_us(7), x[9] == "-" || y[9] == "-" ? "-" : n - (y[9] - x[9])
            else print "- - - - -" }')
    fi
    PUBLISHED="-" DRAIN_S="-" ANSWERED=$((W_requests - W_non2xx))
    if ((drain)); then
        # Requests in flight when wrk stopped are still answered (to closed
        # sockets) after it exits: the bridge's count of 200s must stop
        # moving before it is compared with what the sink has.
        local target prev="" first="" start=$SECONDS
        while :; do
            target="$(hb_answered_200)"
            [[ -n "$target" ]] || target=$((W_requests - W_non2xx))
            [[ -n "$first" ]] || first="$target"
            PUBLISHED="$(published_count)"
            ((PUBLISHED >= target)) && [[ "$target" == "$prev" ]] && break
            prev="$target"
            ((SECONDS - start < DRAIN_TIMEOUT)) || break
            # shellcheck disable=SC2086
            alive $server_pids || break # a dead bridge publishes nothing more
            sleep 0.25
        done
        ANSWERED="$target"
        LATE_200=$((target - first))
        DRAIN_S=$((SECONDS - start))
    fi
    s2=$(proc_ticks $server_pids) b2=$(proc_ticks $broker_pid)
    RSS_KB=$(hwm_kb $server_pids)
    CPU_US="$(awk -v t=$((s2 - s0)) -v n="$W_requests" -v hz="$CLK_TCK" \
        'BEGIN { printf "%.1f", n ? t / hz * 1e6 / n : 0 }')"
    BROKER_US="-"
    [[ -n "$broker_pid" ]] && BROKER_US="$(awk -v t=$((b2 - b0)) -v n="$W_requests" -v hz="$CLK_TCK" \
        'BEGIN { printf "%.1f", n ? t / hz * 1e6 / n : 0 }')"
    return 0
}

# describe_setup: the machine, the versions and the load, for the results file.
# How the CPUs idle: on a VM whose guest halts at once (haltpoll with
# guest_halt_poll_ns = 0), waking a thread on an idle vCPU costs tens of
# microseconds, twice per journal batch (bench/README.md, session 9).
cpuidle_desc() {
    local d=/sys/devices/system/cpu/cpuidle p=/sys/module/haltpoll/parameters/guest_halt_poll_ns
    if [[ -r $d/current_driver ]]; then
        printf 'cpuidle %s' "$(cat "$d/current_driver")"
        # (an if, not &&: without haltpoll, as on bare metal, the function
        # must not fail, which under set -e ends a caller that assigns it)
        if [[ -r $p ]]; then printf ', guest_halt_poll_ns %s' "$(cat "$p")"; fi
    else
        printf 'cpuidle: none'
    fi
}

# Which hookbridge ran: the repository's commit, unless HB_BIN named another
# binary, whose commit the repository cannot tell (before/after runs).
hb_bin_desc() {
    if [[ "$HB_BIN" != "$BUILD_DIR/hookbridge" ]]; then
        echo "the binary HB_BIN=$HB_BIN (its commit is not recorded; the repository was at $1)"
    else
        echo "commit $1 (src/ last changed in $(git log -1 --format=%h -- src include 2>/dev/null || echo '?'))"
    fi
}

describe_setup() {
    local rev dirty=""
    rev="$(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    git diff --quiet HEAD -- src include CMakeLists.txt 2>/dev/null || dirty=" (with uncommitted changes)"
    cat <<EOF2
- machine: $NCPU × $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), Linux $(uname -r), Debian $(cat /etc/debian_version 2>/dev/null || echo '?'); journal on $(df --output=fstype "$TMP" | tail -n1); $(cpuidle_desc)
- **the machine is shared**: the load generator runs on the same 2 cores, and other agents may be compiling (the \`others\` column says how many cores they took while wrk ran). Compare ratios to the ceiling, measured in the same run, rather than absolute figures.
- hookbridge: $(hb_bin_desc "$rev$dirty"), $("$HB_BIN" --version 2>&1 | sed -n 1p)
- ceiling: $(nginx -v 2>&1 | sed 's/^nginx version: //'), libnginx-mod-http-lua $(dpkg-query -W -f '${Version}' libnginx-mod-http-lua 2>/dev/null || echo '?'), 1 worker, Lua \`ngx.req.read_body()\` then 200
- TLS as wrk negotiates it: hookbridge ${TLS_HB:-not run}; nginx ${TLS_NGINX:-not run}; one self-signed P-256 certificate for both
- load: \`wrk -t1 -c<conns> -d${duration}s\` over TLS keep-alive, after ${WARMUP} s of the same load not measured (a fresh bridge's first spare segment is made then), $(wc -c <"$BODY") bytes body (\`bench/body.json\`, \`X-Hub-Signature\` HMAC-SHA1), wrk $(wrk -v 2>&1 | awk 'NR == 1 {print $2}')
- hookbridge config: \`dedup = off\` (every request carries the same notification id), \`tls.min_version = 1.3\`, fresh journal per run; Kafka: librdkafka $(pkg-config --modversion rdkafka) mock cluster (1 broker, in its own process, \`bench/mock_kafka.c\`) unless marked real; Redis: $(redis-server --version | awk '{print $3}' | sed 's/v=//') on loopback, \`redis.maxlen = 0\`
EOF2
}
