#!/usr/bin/env bash
# The real Go parts our tests run (Helm, Flux's kstatus, Argo CD's Lua VM, ...), each built
# from its own Go module under hack/NAME with the Go toolchain on the machine and the Go
# module proxy, cached under ~/.cache/alicloud-rollouts/NAME.
#
#   scripts/go-tool.sh NAME build   fetch and build if needed (warms the cache)
#   scripts/go-tool.sh NAME path    build if needed, then print the binary's path on stdout
#
# hack/NAME/tool.env, when present, is sourced after go.mod is known and may set
# TOOL_PKG (the main package, default: the module itself), TOOL_LDFLAGS (default "-s -w"),
# TOOL_CHECK (arguments the fresh binary is run with as a smoke test) and TOOL_RECIPE
# (bump it when the recipe that turns sources into the binary changes).
# Progress goes to stderr.
set -euo pipefail

PROG=${0##*/}
: "${HOME:=$(cd ~ && pwd)}"
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GO=${ALICLOUD_ROLLOUTS_GO:-}
GO_MIN_MINOR=26

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
  exit 2
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
    die "$GO is $GO_VERSION; hack/$NAME needs go 1.$GO_MIN_MINOR or newer"
}

load_tool() {
  HACK_DIR=$REPO_ROOT/hack/$NAME
  [[ -f $HACK_DIR/go.mod ]] || die "no Go module at hack/$NAME"
  local upper=${NAME^^}
  local cache_var=ALICLOUD_ROLLOUTS_${upper//-/_}_CACHE
  CACHE_DIR=${!cache_var:-${XDG_CACHE_HOME:-$HOME/.cache}/alicloud-rollouts/$NAME}
  TOOL_PKG=.
  TOOL_LDFLAGS="-s -w"
  TOOL_CHECK=()
  TOOL_RECIPE=$NAME-1
  if [[ -f $HACK_DIR/tool.env ]]; then
    # shellcheck source=/dev/null
    source "$HACK_DIR/tool.env"
  fi
}

compute_keys() {
  KEY=$({
    echo "recipe $TOOL_RECIPE"
    echo "go $GO_VERSION"
    echo "ldflags $TOOL_LDFLAGS"
    cat "$HACK_DIR/go.mod" "$HACK_DIR/go.sum"
    # A tool whose main package is in hack/NAME is rebuilt when its sources change.
    if [[ $TOOL_PKG == . ]]; then cat "$HACK_DIR"/*.go; fi
  } | sha256sum | cut -c1-16)
  BUILD_DIR=$CACHE_DIR/builds/$KEY
  BIN=$BUILD_DIR/bin/$NAME
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
  log "building $NAME with $GO_VERSION (modules from the Go module proxy; cache: $CACHE_DIR)"
  local started=$SECONDS
  rm -rf "$BUILD_DIR.tmp"
  mkdir -p "$BUILD_DIR.tmp/bin"
  # Niced: the machines this runs on are often compiling something else too.
  (cd "$HACK_DIR" && go_env nice -n 10 go build -ldflags="$TOOL_LDFLAGS" \
    -o "$BUILD_DIR.tmp/bin/$NAME" "$TOOL_PKG" >&2) ||
    die "go build of hack/$NAME failed (is the Go module proxy reachable? GOPROXY=${GOPROXY:-default})"
  if ((${#TOOL_CHECK[@]})); then
    "$BUILD_DIR.tmp/bin/$NAME" "${TOOL_CHECK[@]}" >&2 || die "the fresh $NAME binary does not run"
  fi
  touch "$BUILD_DIR.tmp/.complete"
  rm -rf "$BUILD_DIR"
  mv "$BUILD_DIR.tmp" "$BUILD_DIR"
  log "built in $((SECONDS - started))s: $BIN"
  # Drop builds not used for a week (`path` touches the one it hands out).
  touch "$BUILD_DIR"
  find "$CACHE_DIR/builds" -mindepth 1 -maxdepth 1 -type d -mtime +7 -exec rm -rf {} +
}

[[ $# -eq 2 && $1 =~ ^[a-z0-9-]+$ ]] || usage
NAME=$1
load_tool
case $2 in
  build) ensure_built ;;
  path)
    ensure_built
    touch "$BUILD_DIR"
    echo "$BIN"
    ;;
  *) usage ;;
esac
