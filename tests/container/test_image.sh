#!/usr/bin/env bash
# The image built and run for real (issue 13): podman builds docker/Dockerfile
# on a debootstrap'ed Debian base, then one container runs as uid 10001 with
# its volume, answers a signed POST with 200 and writes it to the file sink on
# the volume, is healthy by its own HEALTHCHECK with the default ports and with
# moved ones, and exits 0 on SIGTERM within the grace period.
#
# Exit 77 (ctest: skipped) with the reason when podman cannot run here.
#   tests/container/test_image.sh            (from the repository, as root)
# HB_CACHE_DIR (default ~/.cache/hookbridge) keeps the base image tarball.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

tag=${HB_IMAGE_TAG:-hookbridge:test}
id=$$
secret=container_test_secret

# Start a container from the image; prints nothing, records it for cleanup.
#   start NAME VOLUME [podman run options...]
start() {
  local name=$1 vol=$2; shift 2
  at_exit podman rm -f -t 0 "$name"
  at_exit podman volume rm -f "$vol"
  # podman 4.3 complains that it cannot schedule health checks without
  # systemd: we run them ourselves, so its stderr only matters on failure
  podman run -d --name "$name" -v "$vol:/var/lib/hookbridge" \
    -e HOOKBRIDGE_INTERCOM_SECRET="$secret" -e HOOKBRIDGE_SINKS=file "$@" "$tag" \
    >/dev/null 2>"$work/run-$name.err" || { cat "$work/run-$name.err"; fail "podman run $name"; }
}

healthy() { podman healthcheck run "$1"; }

logs_on_failure() { echo "--- podman logs $1"; podman logs "$1" 2>&1 | tail -30; }

ok "base image present"

echo "== podman build --format docker -f docker/Dockerfile -t $tag ."
build_image "$tag" . docker/Dockerfile
ok "image built"
hc=$(podman image inspect -f '{{json .Config.Healthcheck}}' "$tag" 2>/dev/null ||
     podman image inspect -f '{{json .HealthCheck}}' "$tag")
[[ $hc == *"--health"* ]] || fail "the image's HEALTHCHECK is not hookbridge --health: $hc"
if podman run --rm --entrypoint sh "$tag" -c 'command -v curl' >/dev/null 2>&1; then
  fail "the runtime image still has curl"
fi
ok "HEALTHCHECK is hookbridge --health; no curl in the runtime image"

echo "== default ports"
c1=hbtest-image-$id
v1=hbtest-image-vol-$id
start "$c1" "$v1" -p 127.0.0.1::8443
wait_for 90 healthy "$c1" || { logs_on_failure "$c1"; fail "not healthy with the default ports"; }
ok "HEALTHCHECK healthy with the default ports"
uid=$(podman exec "$c1" id -u)
[[ $uid == 10001 ]] || fail "runs as uid $uid, not 10001"
ok "runs as uid 10001"

port=$(podman port "$c1" 8443/tcp | head -1 | sed 's/.*://')
nid="container-$id-$RANDOM"
body=$(printf '{"type":"notification_event","app_id":"ws1","id":"%s","topic":"contact.created","data":{"type":"notification_event_data","item":{"type":"contact","id":"c1"}},"created_at":1768114000}' "$nid")
sig=$(printf '%s' "$body" | openssl dgst -sha1 -hmac "$secret" | sed 's/^.* //')
code=$(curl -sk -o /dev/null -w '%{http_code}' --max-time 30 \
  "https://127.0.0.1:$port/webhooks/intercom" -H 'Content-Type: application/json' \
  -H "X-Hub-Signature: sha1=$sig" --data-binary "$body")
[[ $code == 200 ]] || { logs_on_failure "$c1"; fail "signed POST answered $code, not 200"; }
ok "signed POST answered 200"
mnt=$(podman volume inspect -f '{{.Mountpoint}}' "$v1")
wait_for 30 grep -q "\"$nid\"" "$mnt/events.jsonl" ||
  { logs_on_failure "$c1"; fail "notification $nid not in events.jsonl on the volume"; }
owner=$(stat -c %u "$mnt/events.jsonl")
[[ $owner == 10001 ]] || fail "events.jsonl on the volume is owned by uid $owner"
ok "the notification is in the file sink on the volume"

grace_ms=$(podman exec "$c1" sh -c 'echo ${HOOKBRIDGE_SHUTDOWN_GRACE_MS:-10000}')
podman kill -s TERM "$c1" >/dev/null
stopped() { [[ $(podman inspect -f '{{.State.Running}}' "$c1") == false ]]; }
wait_for $((grace_ms / 1000 + 15)) stopped ||
  { logs_on_failure "$c1"; fail "still running $((grace_ms / 1000 + 15)) s after SIGTERM"; }
rc=$(podman inspect -f '{{.State.ExitCode}}' "$c1")
[[ $rc == 0 ]] || { logs_on_failure "$c1"; fail "exit code $rc after SIGTERM"; }
podman logs "$c1" 2>&1 | grep -q '"stopped"\|stopped' || fail "no 'stopped' in the log"
ok "SIGTERM: exit 0 within the grace period"

echo "== moved ports (HOOKBRIDGE_LISTEN, HOOKBRIDGE_ADMIN_LISTEN)"
c2=hbtest-image-moved-$id
start "$c2" "hbtest-image-vol2-$id" -e HOOKBRIDGE_LISTEN=0.0.0.0:8444 \
  -e HOOKBRIDGE_ADMIN_LISTEN=0.0.0.0:9191
wait_for 90 healthy "$c2" || { logs_on_failure "$c2"; fail "not healthy with moved ports"; }
ok "HEALTHCHECK healthy with the admin port moved to 9191"
# and the check really follows the configuration: nothing answers on 9090
if podman exec -e HOOKBRIDGE_ADMIN_LISTEN=127.0.0.1:9090 "$c2" \
     hookbridge --health -c /etc/hookbridge/hookbridge.conf >/dev/null 2>&1; then
  fail "a check on the default admin port succeeds though the port moved"
fi
ok "a check on the old port 9090 fails"

echo "$pass passed, 0 failed ($((SECONDS - t0)) s)"
