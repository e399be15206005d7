#!/usr/bin/env bash
# The Compose stack run for real (issue 13): Debian's docker-compose 1.29
# against `podman system service`, with local stand-ins built under the image
# names docker-compose.yml uses (tests/container/standins/), runs the README's
# "Run with Docker Compose" commands: `docker compose up -d`, the README's
# signed curl, the consumer's output and the Redis stream.
#
# podman 4.3 schedules health checks through systemd, absent here, so a loop
# runs `podman healthcheck run` for the project's containers; docker-compose
# then honours `condition: service_healthy`.
#
# Exit 77 (ctest: skipped) with the reason when podman cannot run here.
# Then `docker compose --profile metrics up -d`: Prometheus scrapes /metrics.
# Needs the host ports the Compose file publishes (8443, 9090, 9091).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

command -v docker-compose >/dev/null ||
  skip "docker-compose is not installed (scripts/install-deps.sh --test installs it)"
for p in 8443 9090 9091; do
  if (: <"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    fail "port $p is in use: the Compose file publishes it"
  fi
done
testdata=${HB_TESTDATA:-$repo/../shared/testdata}
body=$testdata/intercom/contact.user.created.json
[[ -f $body ]] || fail "test data not found: $body (set HB_TESTDATA)"
"$repo/tests/services/kafka.sh" fetch >/dev/null
libs=${HB_CACHE_DIR:-$HOME/.cache/hookbridge}/kafka-${KAFKA_VERSION:-4.4.0}/libs
ok "base image present, Kafka jars fetched"

echo "== images: hookbridge:local and the stand-ins"
standins=$here/standins
mkdir "$work/kafka"
cp -a "$standins/kafka/." "$work/kafka/"
cp -al "$libs" "$work/kafka/libs" 2>/dev/null || cp -a "$libs" "$work/kafka/libs"
# side by side: on a cold cache most of the time is apt downloading
builds=()
build_image hookbridge:local . docker/Dockerfile &
builds+=($!)
build_image redis:7 "$standins/redis" &
builds+=($!)
build_image edenhill/kcat:1.7.1 "$standins/kcat" &
builds+=($!)
build_image prom/prometheus:v2.53.0 "$standins/prometheus" &
builds+=($!)
build_image apache/kafka:4.1.0 "$work/kafka" &
builds+=($!)
for b in "${builds[@]}"; do
  wait "$b" || fail "an image did not build (see above)"
done
ok "images built"

echo "== podman system service"
sock=$work/podman.sock
podman system service --time=0 "unix://$sock" >"$work/service.log" 2>&1 &
service_pid=$!
at_exit kill "$service_pid"
wait_for 30 test -S "$sock" || fail "podman system service did not create $sock"
export DOCKER_HOST=unix://$sock
export COMPOSE_PROJECT_NAME=hbstack$$
at_exit docker-compose --profile metrics down -v -t 5
project_label=com.docker.compose.project=$COMPOSE_PROJECT_NAME

# the health-check scheduler podman lacks here
(
  while :; do
    for c in $(podman ps -q --filter "label=$project_label" 2>/dev/null); do
      podman healthcheck run "$c" >/dev/null 2>&1 || true
    done
    sleep 2
  done
) &
at_exit kill $!

logs() { docker-compose logs --no-color "$@" 2>&1 | tail -40; }

echo "== docker compose up -d"
# what the README runs (`docker compose` is docker-compose 1.29 here)
if ! timeout 300 docker-compose up -d >"$work/up.log" 2>&1; then
  cat "$work/up.log"
  logs kafka
  logs hookbridge
  fail "docker-compose up -d"
fi
ok "docker compose up -d: kafka, redis, hookbridge healthy; consumer started"

echo "== the README's signed curl"
secret=$(cat docker/secrets/intercom_secret)
sig=$(openssl dgst -sha1 -hmac "$secret" <"$body" | sed 's/^.* //')
answer=$(curl -sk https://127.0.0.1:8443/webhooks/intercom \
  -H 'Content-Type: application/json' \
  -H "X-Hub-Signature: sha1=$sig" \
  --data-binary @"$body")
[[ $answer == '{"status":"accepted"}' ]] || { logs hookbridge; fail "answer: $answer"; }
ok "signed curl answered {\"status\":\"accepted\"}"
nid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$body")

consumer_has() { docker-compose logs --no-color consumer 2>/dev/null | grep -q "$nid"; }
wait_for 120 consumer_has || { logs consumer; logs hookbridge; fail "$nid not in the consumer's output"; }
ok "docker compose logs consumer: the event arrived in Kafka"

stream=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("intercom:%s:%s" % (d["app_id"], d["topic"]))' "$body")
redis_has() { docker-compose exec -T redis redis-cli XRANGE "$stream" - + | grep -q "$nid"; }
wait_for 60 redis_has || { logs hookbridge; fail "$nid not in the Redis stream $stream"; }
ok "docker compose exec redis redis-cli XRANGE $stream: the event is in Redis"

# the apache/kafka image writes to /tmp/kraft-combined-logs unless told
kafka_on_volume() {
  docker-compose exec -T kafka sh -c 'ls /var/lib/kafka/data' | grep -q '^intercom.contact.user.created-'
}
kafka_on_volume || fail "Kafka's partitions are not on the kafka-data volume (/var/lib/kafka/data)"
ok "Kafka's log dirs are on the kafka-data volume"

echo "== docker compose --profile metrics up -d"
timeout 300 docker-compose --profile metrics up -d >"$work/up-metrics.log" 2>&1 ||
  { cat "$work/up-metrics.log"; fail "docker-compose --profile metrics up -d"; }
prom() { curl -sf --max-time 10 -G http://127.0.0.1:9091/api/v1/query --data-urlencode "query=$1"; }
scraped() { prom 'up{job="hookbridge"}' | grep -q '"value":\[[0-9.]*,"1"\]'; }
wait_for 120 scraped || { logs prometheus; fail "Prometheus does not scrape hookbridge:9090/metrics"; }
prom '{job="hookbridge",__name__=~"hookbridge_.+"}' | grep -q '"__name__":"hookbridge_' ||
  fail "no hookbridge_* series in Prometheus"
ok "Prometheus on 127.0.0.1:9091 scrapes hookbridge's /metrics"

echo "== docker compose stop (kcat under an init stops at once)"
# Debian's kcat handles SIGTERM itself, so the stop below is prompt with or
# without the init: check the init is there too
consumer=$(podman ps -q --filter "label=$project_label" \
  --filter label=com.docker.compose.service=consumer)
[[ $(podman inspect -f '{{.HostConfig.Init}}' "$consumer") == true ]] ||
  fail "the consumer does not run under an init (init: true)"
s0=$SECONDS
docker-compose stop -t 20 consumer >/dev/null 2>&1
((SECONDS - s0 < 15)) || fail "the consumer took $((SECONDS - s0)) s to stop"
ok "the consumer stopped on SIGTERM in $((SECONDS - s0)) s"

echo "$pass passed, 0 failed ($((SECONDS - t0)) s)"
