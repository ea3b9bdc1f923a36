#!/usr/bin/env bash
# Helm for the chart's tests, built from its Go module (hack/helm/go.mod pins the version)
# with the Go toolchain on the machine and the Go module proxy, cached under
# ~/.cache/alicloud-rollouts/helm.
#
#   scripts/helm.sh build   fetch and build if needed (warms the cache)
#   scripts/helm.sh path    build if needed, then print the helm binary's path on stdout
#
# Progress goes to stderr.
set -euo pipefail

PROG=${0##*/}
: "${HOME:=$(cd ~ && pwd)}"
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HACK_DIR=$REPO_ROOT/hack/helm
CACHE_DIR=${ALICLOUD_ROLLOUTS_HELM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/alicloud-rollouts/helm}
GO=${ALICLOUD_ROLLOUTS_GO:-}
GO_MIN_MINOR=26
# Bump when the recipe that turns sources into the binary changes.
RECIPE=helm-1

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

find_go() {
  if [[ -z $GO ]]; then
    if command -v go >/dev/null; then
      GO=$(command -v go)
    elif [[ -x /usr/local/go/bin/go ]]; then
      GO=/usr/local/go/bin/go
    else
      die "no Go toolchain: need go 1.$GO_MIN_MINOR or newer on PATH or at /usr/local/go/bin/go" \
        "(or set ALICLOUD_ROLLOUTS_GO)"
    fi
  fi
  GO_VERSION=$(cd / && GOTOOLCHAIN=local GOFLAGS= "$GO" env GOVERSION) || die "$GO does not run"
  local minor
  minor=$(sed -nE 's/^go1\.([0-9]+)([^0-9].*)?$/\1/p' <<<"$GO_VERSION")
  [[ $minor =~ ^[0-9]+$ ]] && ((minor >= GO_MIN_MINOR)) ||
    die "$GO is $GO_VERSION; hack/helm needs go 1.$GO_MIN_MINOR or newer"
}

# The Helm version hack/helm/go.mod requires (e.g. v4.3.2).
helm_version() {
  awk '($1 == "require" && $2 == "helm.sh/helm/v4") {print $3} ($1 == "helm.sh/helm/v4" && $2 ~ /^v/) {print $2}' \
    "$HACK_DIR/go.mod" | head -n1
}

compute_keys() {
  HELM_VERSION=$(helm_version)
  [[ $HELM_VERSION =~ ^v4\.[0-9]+\.[0-9]+$ ]] ||
    die "cannot read the helm.sh/helm/v4 version from $HACK_DIR/go.mod (got '$HELM_VERSION')"
  # What `helm version` reports (the module alone carries no version).
  LDFLAGS="-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION"
  KEY=$({
    echo "recipe $RECIPE"
    echo "go $GO_VERSION"
    echo "ldflags $LDFLAGS"
    cat "$HACK_DIR/go.mod" "$HACK_DIR/go.sum"
  } | sha256sum | cut -c1-16)
  BUILD_DIR=$CACHE_DIR/builds/$KEY
  HELM=$BUILD_DIR/bin/helm
}

# A clean environment for the Go build, with its caches under $CACHE_DIR; proxy settings
# are carried over.
go_env() {
  local vars=(HOME="$HOME" TMPDIR="${TMPDIR:-/tmp}" PATH="$(dirname "$GO"):/usr/bin:/bin"
    GOMODCACHE="$CACHE_DIR/gomod" GOCACHE="$CACHE_DIR/gocache" GOPATH="$CACHE_DIR/gopath"
    GOFLAGS="-mod=readonly -modcacherw -trimpath" GOTOOLCHAIN=local GOWORK=off
    GOTELEMETRY=off CGO_ENABLED=0 GOGC=400)
  local v
  for v in GOPROXY GOSUMDB GONOSUMDB GONOPROXY GOPRIVATE GOINSECURE \
    http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
    [[ -n ${!v:-} ]] && vars+=("$v=${!v}")
  done
  env -i "${vars[@]}" "$@"
}

ensure_built() {
  mkdir -p "$CACHE_DIR"
  exec 8>"$CACHE_DIR/.build.lock"
  if ! flock -n 8; then
    log "waiting for another build in $CACHE_DIR"
    flock 8
  fi
  find_go
  compute_keys
  [[ -e $BUILD_DIR/.complete ]] && return 0
  log "building helm $HELM_VERSION with $GO_VERSION (modules from the Go module proxy;" \
    "takes minutes cold; cache: $CACHE_DIR)"
  local started=$SECONDS
  rm -rf "$BUILD_DIR.tmp"
  mkdir -p "$BUILD_DIR.tmp/bin"
  # Niced: the machines this runs on are often compiling something else too.
  (cd "$HACK_DIR" && go_env nice -n 10 go build -ldflags="$LDFLAGS" -o "$BUILD_DIR.tmp/bin/helm" \
    helm.sh/helm/v4/cmd/helm >&2) ||
    die "go build failed (is the Go module proxy reachable? GOPROXY=${GOPROXY:-default})"
  "$BUILD_DIR.tmp/bin/helm" version >&2
  touch "$BUILD_DIR.tmp/.complete"
  rm -rf "$BUILD_DIR"
  mv "$BUILD_DIR.tmp" "$BUILD_DIR"
  log "built in $((SECONDS - started))s: $BUILD_DIR/bin/helm"
  # Drop builds not used for a week (`path` touches the one it hands out).
  touch "$BUILD_DIR"
  find "$CACHE_DIR/builds" -mindepth 1 -maxdepth 1 -type d -mtime +7 -exec rm -rf {} +
}

case ${1:-} in
  build) ensure_built ;;
  path)
    ensure_built
    touch "$BUILD_DIR"
    echo "$HELM"
    ;;
  *)
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
