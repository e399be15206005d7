# Shared by the container tests (sourced): podman with this directory's
# containers.conf, the skip rule, polling, pass/fail reporting and cleanup.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"
export CONTAINERS_CONF="$here/containers.conf"

skip() { echo "SKIP: $*"; exit 77; }
if ! command -v podman >/dev/null; then
  skip "podman is not installed (scripts/install-deps.sh --test installs podman, runc, debootstrap)"
fi
if ! out=$(podman info 2>&1 >/dev/null); then
  skip "podman cannot run here: $(echo "$out" | tail -1)"
fi
command -v debootstrap >/dev/null || podman image exists debian:bookworm ||
  skip "debootstrap is not installed and there is no debian:bookworm image"

t0=$SECONDS
pass=0
fail() { echo "FAIL: $*"; exit 1; }
ok() { pass=$((pass + 1)); echo "ok   $* ($((SECONDS - t0)) s)"; }
work=$(mktemp -d)
cleanups=()
# run at exit, last registered first
at_exit() { cleanups=("$*" "${cleanups[@]}"); }
run_cleanups() {
  for c in "${cleanups[@]}"; do eval "$c" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap run_cleanups EXIT

# Poll `cmd...` until it succeeds or `secs` pass.
wait_for() {
  local secs=$1; shift
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 1
  done
}

# build_image TAG CONTEXT [DOCKERFILE]: docker format, since the OCI format
# drops HEALTHCHECK; layers are cached between runs.
build_image() {
  local tag=$1 ctx=$2 file=${3:-$2/Dockerfile} log
  log=$work/build-${tag//[\/:]/_}.log
  podman build --format docker -f "$file" -t "$tag" "$ctx" >"$log" 2>&1 ||
    { tail -40 "$log"; fail "podman build $tag"; }
}

echo "== base image (debian:bookworm, debian:bookworm-slim)"
"$here/base-image.sh"
