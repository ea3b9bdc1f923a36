#!/usr/bin/env bash
# The operator's container image, built without a container daemon: a statically linked
# binary (glibc, linked with crt-static; TLS by rustls, no OpenSSL) in an OCI image of one
# layer that runs as a non-root user (65532). hack/image (go-containerregistry as a
# library, built from the Go module proxy and cached under ~/.cache/alicloud-rollouts/image)
# writes the image. The Dockerfile does the same for people with Docker.
#
#   scripts/image.sh build [--profile release|dev] [--binary FILE] [--out DIR] [--tag NAME:TAG]
#       build the static binary (release unless told; or pack FILE as it is), then write
#       DIR/oci (an OCI image layout) and DIR/alicloud-rollouts.tar (for `docker load`,
#       `podman load`, or `crane push DIR/alicloud-rollouts.tar REGISTRY/alicloud-rollouts:TAG`).
#       DIR defaults to $CARGO_TARGET_DIR/image (./target/image).
#   scripts/image.sh static-binary [--profile release|dev]
#       only build the static binary; print its path on stdout
#   scripts/image.sh tool
#       only build the image writer (warms the cache); print its path on stdout
#
# Progress goes to stderr; `build` prints the image's name@digest on stdout.
set -euo pipefail

PROG=${0##*/}
: "${HOME:=$(cd ~ && pwd)}"
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HACK_DIR=$REPO_ROOT/hack/image
CACHE_DIR=${ALICLOUD_ROLLOUTS_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/alicloud-rollouts/image}
TARGET=x86_64-unknown-linux-gnu
GO=${ALICLOUD_ROLLOUTS_GO:-}
GO_MIN_MINOR=26
# Bump when the recipe that turns sources into the tool changes.
RECIPE=image-1
UID_NONROOT=65532

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
    die "$GO is $GO_VERSION; hack/image needs go 1.$GO_MIN_MINOR or newer"
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

# Sets TOOL to the image writer, building it if needed.
ensure_tool() {
  mkdir -p "$CACHE_DIR"
  exec 8>"$CACHE_DIR/.build.lock"
  if ! flock -n 8; then
    log "waiting for another build in $CACHE_DIR"
    flock 8
  fi
  find_go
  local key
  key=$({
    echo "recipe $RECIPE"
    echo "go $GO_VERSION"
    cat "$HACK_DIR/go.mod" "$HACK_DIR/go.sum" "$HACK_DIR/main.go"
  } | sha256sum | cut -c1-16)
  local build=$CACHE_DIR/builds/$key
  TOOL=$build/bin/image
  if [[ ! -e $build/.complete ]]; then
    log "building the image writer (hack/image) with $GO_VERSION (modules from the Go module proxy)"
    rm -rf "$build.tmp"
    mkdir -p "$build.tmp/bin"
    (cd "$HACK_DIR" && go_env nice -n 10 go build -ldflags="-s -w" -o "$build.tmp/bin/image" . >&2) ||
      die "go build failed (is the Go module proxy reachable? GOPROXY=${GOPROXY:-default})"
    touch "$build.tmp/.complete"
    rm -rf "$build"
    mv "$build.tmp" "$build"
    find "$CACHE_DIR/builds" -mindepth 1 -maxdepth 1 -type d -mtime +7 -exec rm -rf {} +
  fi
  touch "$build"
  exec 8>&-
}

# Sets BINARY to the static binary of $PROFILE, building it. Build scripts and proc macros
# are built for the host as usual (RUSTFLAGS apply to the --target artifacts only).
build_static() {
  local target_dir=${CARGO_TARGET_DIR:-$REPO_ROOT/target}
  local dir=$PROFILE
  [[ $PROFILE == dev ]] && dir=debug
  log "building the static binary ($PROFILE profile, $TARGET, crt-static)"
  (cd "$REPO_ROOT" && RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static" \
    cargo build --locked --profile "$PROFILE" --target "$TARGET" --bin alicloud-rollouts >&2)
  BINARY=$target_dir/$TARGET/$dir/alicloud-rollouts
  [[ -x $BINARY ]] || die "cargo built no $BINARY"
}

check_static() {
  # A dynamically linked ELF names its loader in a PT_INTERP program header.
  if command -v readelf >/dev/null && readelf -lW "$1" | grep -q 'Requesting program interpreter'; then
    die "$1 is dynamically linked; the image has no libc to load it with"
  fi
}

crate_version() {
  sed -nE '/^\[package\]/,/^\[/ s/^version *= *"([^"]+)".*/\1/p' "$REPO_ROOT/Cargo.toml" | head -n1
}

PROFILE=release
BINARY=
OUT=
TAG=
cmd=${1:-}
[[ $# -gt 0 ]] && shift
while [[ $# -gt 0 ]]; do
  case $1 in
    --profile) PROFILE=${2:?}; shift 2 ;;
    --binary) BINARY=${2:?}; shift 2 ;;
    --out) OUT=${2:?}; shift 2 ;;
    --tag) TAG=${2:?}; shift 2 ;;
    *) die "unknown argument $1 (see the top of $0)" ;;
  esac
done
[[ $PROFILE == release || $PROFILE == dev ]] || die "--profile is release or dev, not $PROFILE"

case $cmd in
  build)
    ensure_tool
    [[ -n $BINARY ]] || build_static
    check_static "$BINARY"
    version=$(crate_version)
    OUT=${OUT:-${CARGO_TARGET_DIR:-$REPO_ROOT/target}/image}
    mkdir -p "$OUT"
    "$TOOL" -binary "$BINARY" -layout "$OUT/oci" -tarball "$OUT/alicloud-rollouts.tar" \
      -tag "${TAG:-alicloud-rollouts:$version}" -version "$version" -uid "$UID_NONROOT"
    log "wrote $OUT/oci (OCI layout) and $OUT/alicloud-rollouts.tar"
    ;;
  static-binary)
    build_static
    check_static "$BINARY"
    echo "$BINARY"
    ;;
  tool)
    ensure_tool
    echo "$TOOL"
    ;;
  *)
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
