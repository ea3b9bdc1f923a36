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
TARGET=x86_64-unknown-linux-gnu
UID_NONROOT=65532

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# Sets TOOL to the image writer, built from hack/image by scripts/go-tool.sh (cached).
ensure_tool() {
  TOOL=$(bash "$REPO_ROOT/scripts/go-tool.sh" image path) || die "could not build hack/image"
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
