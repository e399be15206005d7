#!/usr/bin/env bash
# Real single-node Apache Kafka broker (KRaft, combined broker+controller) on
# free loopback ports, for hookbridge's integration tests.
#
#   kafka.sh fetch            download the broker jars (once) from Maven Central
#   kafka.sh start            start (or reuse) the broker; prints KAFKA_BROKERS=127.0.0.1:PORT
#   kafka.sh stop             stop it and delete its state (KEEP_DATA=1 keeps it)
#   kafka.sh status           print KAFKA_BROKERS=... and exit 0 if running, else exit 3
#   kafka.sh topics ARGS...   run kafka-topics against the running broker
#
# See README.md next to this file for the environment variables.
set -euo pipefail

KAFKA_VERSION="${KAFKA_VERSION:-4.4.0}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SELF="$HERE/$(basename "${BASH_SOURCE[0]}")"
CACHE_DIR="${HB_CACHE_DIR:-${HOME:-/root}/.cache/hookbridge}"
KAFKA_HOME="$CACHE_DIR/kafka-$KAFKA_VERSION"
LIBS="$KAFKA_HOME/libs"
# Absolute, because the broker runs with its state dir as cwd.
STATE="$(realpath -m "${HB_KAFKA_DIR:-/tmp/hookbridge-kafka}")"
PIDFILE="$STATE/kafka.pid"
LOGFILE="$STATE/broker.log"
MARKER="$STATE/.hookbridge-kafka"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-120}"
STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx512m -Xms256m}"

# stdout carries only the KAFKA_BROKERS line, so scripts can eval/grep it.
log() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# need CMD DEBIAN_PACKAGE: make sure a tool is there. As root on Debian we
# install it ourselves, since CI machines start without anything hand-installed.
need() {
    command -v "$1" >/dev/null 2>&1 && return 0
    if [[ "$(id -u)" == 0 && "${HB_NO_APT:-0}" != 1 ]] && command -v apt-get >/dev/null 2>&1; then
        log "'$1' not found; installing Debian package $2"
        export DEBIAN_FRONTEND=noninteractive
        # A fresh machine may have no package lists yet: update only if needed.
        apt-get install -y -q --no-install-recommends "$2" </dev/null >&2 \
            || { apt-get update -q </dev/null >&2 \
                 && apt-get install -y -q --no-install-recommends "$2" </dev/null >&2; } \
            || true
        hash -r
        command -v "$1" >/dev/null 2>&1 && return 0
    fi
    die "'$1' not found: install the Debian package $2 (apt-get install -y $2)"
}

need_java() {
    need java openjdk-17-jre-headless
    local v
    v="$(java -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2}')"
    # Kafka 4.x brokers are compiled for Java 17 (class file version 61).
    [[ "${v%%.*}" =~ ^[0-9]+$ && "${v%%.*}" -ge 17 ]] \
        || die "Kafka $KAFKA_VERSION needs Java 17+, but 'java' is ${v:-unknown}: install openjdk-17-jre-headless"
}

# The pom's hash is stored in the marker so that editing kafka-pom.xml
# (e.g. adding a jar) triggers a re-fetch instead of silently using old jars.
pom_sum() { sha256sum "$HERE/kafka-pom.xml" | cut -d' ' -f1; }

fetched() { [[ -f "$KAFKA_HOME/.complete" && "$(cat "$KAFKA_HOME/.complete")" == "$(pom_sum)" ]]; }

fetch() {
    fetched && return 0
    mkdir -p "$CACHE_DIR"
    # Parallel test jobs may all call `start` on a cold cache; only one downloads.
    exec 9>"$CACHE_DIR/.kafka-$KAFKA_VERSION.lock"
    flock 9
    if ! fetched; then
        need mvn maven
        local tmp
        tmp="$(mktemp -d "$CACHE_DIR/.kafka-$KAFKA_VERSION.XXXXXX")"
        # Run on a copy so Maven never writes anything into the source tree.
        cp "$HERE/kafka-pom.xml" "$tmp/pom.xml"
        log "fetching org.apache.kafka:kafka_2.13:$KAFKA_VERSION and its runtime dependencies from Maven Central"
        if ! mvn -B -q -Dstyle.color=never -f "$tmp/pom.xml" -Dkafka.version="$KAFKA_VERSION" \
                dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp/libs" \
                </dev/null >"$tmp/mvn.log" 2>&1 \
           || [[ ! -f "$tmp/libs/kafka_2.13-$KAFKA_VERSION.jar" ]]; then
            tail -n 40 "$tmp/mvn.log" >&2
            rm -rf "$tmp"
            die "could not fetch Kafka $KAFKA_VERSION with Maven (see above)"
        fi
        # Swap in the complete folder only at the end: an interrupted fetch
        # leaves no half-filled libs/ behind.
        rm -rf "$KAFKA_HOME"
        mkdir -p "$KAFKA_HOME"
        mv "$tmp/libs" "$LIBS"
        cp "$tmp/pom.xml" "$KAFKA_HOME/kafka-pom.xml"
        pom_sum >"$KAFKA_HOME/.complete"
        rm -rf "$tmp"
        log "Kafka $KAFKA_VERSION jars are in $LIBS"
    fi
    # Close the lock: the broker started later must not inherit (and hold) it.
    exec 9>&-
}

# Prints N distinct free loopback ports. All sockets are held open together
# so the N ports differ; the usual bind-then-release race is accepted.
free_ports() {
    local n="$1"
    if command -v python3 >/dev/null 2>&1 && python3 -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))' "$n" </dev/null 2>/dev/null; then
        return 0
    fi
    # No python3: probe random high ports; "connection refused" means free.
    local ports=() p tries=0
    while ((${#ports[@]} < n)); do
        ((++tries > 500)) && die "found no free loopback port"
        p=$((20000 + RANDOM % 40000))
        [[ " ${ports[*]} " == *" $p "* ]] && continue
        if ! (: <"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then ports+=("$p"); fi
    done
    echo "${ports[*]}"
}

# kill -0 also succeeds on a zombie. Our daemons are reparented to PID 1,
# which on some machines (containers, microVM inits) reaps only every second
# or two, so a zombie counts as gone: it holds no port and no files.
alive() {
    local st
    st="$(awk '/^State:/ {print $2}' "/proc/$1/status" 2>/dev/null)" || return 1
    [[ -n "$st" && "$st" != Z ]]
}

port_in_use() { (: <"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Only a PID whose command line names *our* server.properties counts, so a
# stale pid file never makes us signal an unrelated process that reused the PID.
broker_pid() {
    local pid
    [[ -f "$PIDFILE" ]] || return 1
    pid="$(cat "$PIDFILE")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    alive "$pid" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$STATE/server.properties" || return 1
    echo "$pid"
}

load_ports() {
    # shellcheck source=/dev/null
    [[ -f "$STATE/ports" ]] && . "$STATE/ports" && [[ -n "${PORT:-}" && -n "${CONTROLLER_PORT:-}" ]]
}

write_config() {
    local auto_create="${KAFKA_AUTO_CREATE:-true}"
    [[ "$auto_create" == true || "$auto_create" == false ]] \
        || die "KAFKA_AUTO_CREATE must be true or false, not '$auto_create'"
    # Rewritten on every start so env settings (KAFKA_AUTO_CREATE) apply to a
    # KEEP_DATA restart too; ports and data stay.
    cat >"$STATE/server.properties" <<EOF
# Generated by tests/services/kafka.sh: single-node KRaft test broker.
process.roles=broker,controller
node.id=1
# Static single-voter quorum: simplest KRaft setup, formatted without
# --standalone/--initial-controllers (which are for dynamic quorums).
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$STATE/data

auto.create.topics.enable=$auto_create
num.partitions=3
default.replication.factor=1
min.insync.replicas=1
# Internal topics default to RF 3, which one broker can never satisfy, and to
# 50 partitions, which makes the first consumer group / transaction slow.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Consumers in tests should get partitions at once, not after 3 s.
group.initial.rebalance.delay.ms=0
# After a SIGKILL (crash tests) the restarted broker cannot register until the
# old incarnation's session expires: 9 s by default, 3 s here. Heartbeats are
# in-process over loopback, so 3 s does not cause spurious fencing.
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=3000

# Two cores: keep thread pools small.
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
EOF

    cat >"$STATE/log4j2.properties" <<'EOF'
# Broker logs go to stdout, which kafka.sh redirects to broker.log.
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
EOF

    # CLI tools (`kafka.sh topics`): warnings only, on stderr.
    cat >"$STATE/tools-log4j2.properties" <<'EOF'
status = warn
appender.err.type = Console
appender.err.name = ERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = ERR
EOF
}

# Short-lived CLI JVMs: C1 only starts them ~0.4 s faster on two cores.
tool_java() {
    java -XX:TieredStopAtLevel=1 -XX:-UsePerfData \
        -Dlog4j2.configurationFile="file:$STATE/tools-log4j2.properties" -cp "$LIBS/*" "$@"
}

# A KRaft log dir must be formatted (cluster id + metadata bootstrap) once.
format_storage() {
    local cid
    # Kafka cluster ids are 16 random bytes in URL-safe base64 without padding.
    # One starting with '-' would be read as an option, so draw again.
    while :; do
        cid="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
        [[ "$cid" != -* ]] && break
    done
    if ! tool_java kafka.tools.StorageTool format --cluster-id "$cid" --config "$STATE/server.properties" \
            </dev/null >"$STATE/format.log" 2>&1; then
        cat "$STATE/format.log" >&2
        die "formatting Kafka storage in $STATE/data failed"
    fi
}

broker_ready() {
    # Cheap check first: kcat against a closed port would sit out its whole
    # metadata timeout instead of retrying quickly.
    port_in_use "$PORT" || return 1
    if command -v kcat >/dev/null 2>&1; then
        timeout 15 kcat -b "127.0.0.1:$PORT" -L -m 5 </dev/null 2>/dev/null | grep -q '^ *1 brokers:'
    else
        # Slower (one JVM per try) but needs nothing beyond the jars.
        timeout 30 "$SELF" topics --list </dev/null >/dev/null 2>&1
    fi
}

emit_env() {
    local line="KAFKA_BROKERS=127.0.0.1:$PORT"
    printf '%s\n' "$line" >"$STATE/env.tmp" && mv "$STATE/env.tmp" "$STATE/env"
    printf '%s\n' "$line"
}

kill_broker() {
    local pid="$1" waited=0
    kill -TERM "$pid" 2>/dev/null || return 0
    # SIGTERM triggers Kafka's clean shutdown (log flush, clean-shutdown marker),
    # which keeps a KEEP_DATA restart from running log recovery.
    while alive "$pid" && ((waited < STOP_TIMEOUT * 10)); do
        sleep 0.1
        ((++waited))
    done
    if alive "$pid"; then
        log "broker (pid $pid) ignored SIGTERM for ${STOP_TIMEOUT}s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        while alive "$pid"; do sleep 0.1; done
    fi
}

cmd_start() {
    local pid
    if pid="$(broker_pid)" && load_ports; then
        log "already running (pid $pid)"
        emit_env
        return 0
    fi
    need_java
    fetch
    mkdir -p "$STATE"
    touch "$MARKER"
    rm -f "$PIDFILE"
    if load_ports; then
        # Existing state (KEEP_DATA=1 stop): same ports, so clients that were
        # connected before the outage reconnect to the same address.
        log "reusing state in $STATE (ports $PORT/$CONTROLLER_PORT)"
        local p
        for p in "$PORT" "$CONTROLLER_PORT"; do
            if port_in_use "$p"; then
                die "port $p (from $STATE/ports) is taken by another process; run '$SELF stop' to start afresh"
            fi
        done
    else
        read -r PORT CONTROLLER_PORT <<<"$(free_ports 2)"
        [[ -n "$CONTROLLER_PORT" ]] || die "could not pick free ports"
        printf 'PORT=%s\nCONTROLLER_PORT=%s\n' "$PORT" "$CONTROLLER_PORT" >"$STATE/ports"
    fi
    write_config
    [[ -f "$STATE/data/meta.properties" ]] || format_storage

    # setsid: the broker must outlive the calling shell and not get its
    # signals (e.g. a test runner's Ctrl-C to its process group). Without job
    # control the background child is no group leader, so setsid execs in
    # place and $! is the java PID. stdio goes to the log so that
    # `$(kafka.sh start)` does not wait for the broker to close stdout.
    cd "$STATE"
    # shellcheck disable=SC2086  # HEAP_OPTS is a list of options
    setsid java $HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
        -XX:-UsePerfData -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="file:$STATE/log4j2.properties" \
        -cp "$LIBS/*" kafka.Kafka "$STATE/server.properties" \
        </dev/null >>"$LOGFILE" 2>&1 &
    echo $! >"$PIDFILE"
    cd / # do not keep the state dir busy

    local deadline=$((SECONDS + START_TIMEOUT))
    until broker_ready; do
        if ! pid="$(broker_pid)"; then
            log "broker exited during startup; last lines of $LOGFILE:"
            tail -n 60 "$LOGFILE" >&2
            exit 1
        fi
        if ((SECONDS >= deadline)); then
            log "broker did not answer on 127.0.0.1:$PORT within ${START_TIMEOUT}s; last lines of $LOGFILE:"
            tail -n 60 "$LOGFILE" >&2
            kill_broker "$pid"
            exit 1
        fi
        sleep 0.2
    done
    log "broker up (pid $(cat "$PIDFILE"), Kafka $KAFKA_VERSION, state $STATE)"
    emit_env
}

cmd_stop() {
    local pid
    if pid="$(broker_pid)"; then
        kill_broker "$pid"
        log "stopped broker (pid $pid)"
    fi
    rm -f "$PIDFILE"
    [[ -d "$STATE" ]] || return 0
    if [[ "${KEEP_DATA:-0}" == 1 ]]; then
        # env stays: the address is still right for the restart.
        log "kept $STATE (KEEP_DATA=1): next start reuses its port and data"
    elif [[ -f "$MARKER" ]]; then
        rm -rf "$STATE"
    else
        # The marker guards against HB_KAFKA_DIR pointing at a directory that
        # is not ours.
        log "not deleting $STATE: it was not created by kafka.sh"
    fi
}

cmd_status() {
    local pid
    if pid="$(broker_pid)" && load_ports; then
        log "running (pid $pid)"
        printf 'KAFKA_BROKERS=127.0.0.1:%s\n' "$PORT"
    else
        log "not running"
        exit 3
    fi
}

cmd_topics() {
    if ! broker_pid >/dev/null || ! load_ports; then die "broker is not running"; fi
    need_java
    tool_java org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$PORT" "$@"
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
fetch) need_java; fetch ;;
topics) shift; cmd_topics "$@" ;;
*)
    echo "usage: $0 start|stop|status|fetch|topics [kafka-topics args...]" >&2
    exit 2
    ;;
esac
