#!/usr/bin/env bash
# Benchmark: wrk over TLS keep-alive against the real binary on loopback,
# posting a signed ~1.9 KB Intercom notification, with ack = durable
# (fdatasync before every 200) and the file sink publishing everything.
# Figures go to bench/results/<date>-<sink>.txt and to stdout.
#
#   bench/run.sh [duration_s] [connections]      e.g. bench/run.sh 20 64
# Env: SINKS=file|kafka|redis (kafka needs KAFKA_BROKERS, redis REDIS_URL),
#      ACK=durable|written|published, WORKERS (default: CPUs).
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-20}
conns=${2:-64}
sinks=${SINKS:-file}
ack=${ACK:-durable}
command -v wrk >/dev/null || scripts/install-deps.sh --test
command -v wrk >/dev/null || apt-get install -y -q wrk >/dev/null
[[ -f build/CMakeCache.txt ]] || scripts/build.sh >/dev/null
cmake --build build --target hookbridge >/dev/null

tmp=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$tmp"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
aport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
body=../shared/testdata/intercom/contact.user.created.json
secret=test_intercom_client_secret
cat > "$tmp/hb.conf" <<CONF
listen = 127.0.0.1:$port
admin.listen = 127.0.0.1:$aport
data.dir = $tmp
journal.dir = $tmp/journal
file.path = $tmp/events.jsonl
intercom.secret = $secret
sinks = $sinks
ack = $ack
dedup = off
log.level = warn
CONF
[[ -n "${KAFKA_BROKERS:-}" ]] && echo "kafka.brokers = $KAFKA_BROKERS" >> "$tmp/hb.conf"
[[ -n "${REDIS_URL:-}" ]] && echo "redis.url = $REDIS_URL" >> "$tmp/hb.conf"
[[ -n "${WORKERS:-}" ]] && echo "workers = $WORKERS" >> "$tmp/hb.conf"
build/hookbridge -c "$tmp/hb.conf" 2> "$tmp/log" &
pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$aport/healthz" >/dev/null && break; sleep 0.1; done

sig="sha1=$(openssl dgst -sha1 -hmac "$secret" < "$body" | sed 's/^.* //')"
out=$(BODY_FILE="$body" SIGNATURE="$sig" wrk -t2 -c"$conns" -d"${dur}s" --latency \
      -s bench/post.lua "https://127.0.0.1:$port/webhooks/intercom")
result=$(grep '^RESULT' <<<"$out" | sed 's/^RESULT //')

# wait (bounded) for the sink to publish everything, then read the figures
for _ in $(seq 600); do
  pending=$(curl -fs "http://127.0.0.1:$aport/metrics" | awk '/^hookbridge_sink_pending_records/ {s+=$2} END {print s+0}')
  [[ "$pending" == 0 ]] && break
  sleep 0.1
done
metrics=$(curl -fs "http://127.0.0.1:$aport/metrics")
published=$(awk '/^hookbridge_sink_published_total/ {print $2; exit}' <<<"$metrics")
ok200=$(awk -F' ' '/^hookbridge_requests_total\{route="intercom",status="200"\}/ {print $2}' <<<"$metrics")
rss_kb=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
mkdir -p bench/results
file="bench/results/$(date -u +%Y%m%d-%H%M%S)-$sinks-$ack.txt"
{
  echo "date: $(date -u +%FT%TZ)"
  echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
  echo "hookbridge: $(build/hookbridge --version)"
  echo "setup: wrk -t2 -c$conns -d${dur}s over TLS keep-alive, body $(wc -c < "$body") bytes, sinks=$sinks ack=$ack dedup=off workers=${WORKERS:-cpus}"
  echo "wrk: $result"
  echo "bridge: answered_200=$ok200 published=$published pending_after=$pending peak_rss_kb=$rss_kb"
} | tee "$file"
