#!/usr/bin/env bash
# Install what hookbridge needs from Debian's packages, only what is missing.
#   scripts/install-deps.sh          build and run dependencies
#   scripts/install-deps.sh --test   also what the test suite needs (Redis,
#                                    Java + Maven for the Kafka broker, kcat,
#                                    clang for fuzzing, docker-compose to
#                                    validate the Compose file, podman +
#                                    catatonit (Compose `init: true`) + dnsname
#                                    (service names in Compose networks) +
#                                    runc + debootstrap to build and run
#                                    the image, python3-yaml and prometheus's
#                                    promtool to check deploy/; on a host with
#                                    systemd that package also starts a
#                                    Prometheus server on :9090, which
#                                    `systemctl disable --now prometheus` stops;
#                                    haproxy for the replicas test, whose
#                                    service a host with systemd starts too)
# Used by the README's commands, .ci/run and docker/Dockerfile alike.
set -euo pipefail

pkgs=(build-essential cmake ninja-build pkg-config
      libevent-dev libssl-dev libjansson-dev librdkafka-dev libhiredis-dev libjemalloc-dev
      openssl curl)
if [[ "${1:-}" == "--test" ]]; then
  pkgs+=(python3 redis-server redis-tools kcat maven openjdk-17-jre-headless docker-compose clang clang-format libclang-rt-14-dev wrk
         procps podman runc catatonit debootstrap
         golang-github-containernetworking-plugin-dnsname python3-yaml prometheus haproxy)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# python3 may come from elsewhere (pyenv); the command is what matters.
if command -v python3 >/dev/null; then
  missing=("${missing[@]/python3}")
fi
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))
if ((${#missing[@]} == 0)); then
  exit 0
fi
echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q >/dev/null
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
