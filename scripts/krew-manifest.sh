#!/usr/bin/env bash
# Release helper for the kubectl plugin's krew manifest (plugins/alicloud-rollouts.yaml,
# a template).
#
#   scripts/krew-manifest.sh archive TARGET VERSION DIST_DIR
#       Pack target/TARGET/release/kubectl-alicloud_rollouts (built beforehand with
#       `cargo build --release --target TARGET --bin kubectl-alicloud_rollouts`) into
#       DIST_DIR/kubectl-alicloud_rollouts-vVERSION-TARGET.tar.gz, the name the manifest
#       expects.
#   scripts/krew-manifest.sh fill VERSION BASE_URL HOMEPAGE DIST_DIR
#       Print the manifest with the version, the URLs under BASE_URL, the homepage and the
#       sha256 of each archive in DIST_DIR. Fails if an archive is missing or a
#       placeholder is left.
set -euo pipefail

PROG=${0##*/}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TEMPLATE=$ROOT/plugins/alicloud-rollouts.yaml
BIN=kubectl-alicloud_rollouts

die() { echo "$PROG: $*" >&2; exit 1; }

archive_name() { echo "$BIN-v$2-$1.tar.gz"; }

case "${1:-}" in
  archive)
    [ $# -eq 4 ] || die "usage: $PROG archive TARGET VERSION DIST_DIR"
    target=$2 version=$3 dist=$4
    built=${CARGO_TARGET_DIR:-$ROOT/target}/$target/release/$BIN
    [ -x "$built" ] || die "$built not found: cargo build --release --target $target --bin $BIN"
    mkdir -p "$dist"
    tar -C "$(dirname "$built")" -czf "$dist/$(archive_name "$target" "$version")" "$BIN"
    echo "$dist/$(archive_name "$target" "$version")"
    ;;
  fill)
    [ $# -eq 5 ] || die "usage: $PROG fill VERSION BASE_URL HOMEPAGE DIST_DIR"
    version=${2#v} base=${3%/} homepage=$4 dist=$5
    [[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+ ]] || die "version $version is not semver (e.g. 0.1.0)"
    # The template's comment block (up to apiVersion) is for the repository, not krew.
    out=$(sed -n '/^apiVersion:/,$p' "$TEMPLATE")
    out=${out//@VERSION@/$version}
    out=${out//@BASE_URL@/$base}
    out=${out//@HOMEPAGE@/$homepage}
    for target in $(grep -o '@SHA256_[^@]*@' <<<"$out" | sed 's/^@SHA256_//; s/@$//' | sort -u); do
      file=$dist/$(archive_name "$target" "$version")
      [ -f "$file" ] || die "no archive for $target: $file (make it with: $PROG archive $target $version $dist)"
      sha=$(sha256sum "$file" | cut -d' ' -f1)
      out=${out//@SHA256_${target}@/$sha}
    done
    if left=$(grep -o '@[A-Za-z0-9_-]*@' <<<"$out"); then
      die "placeholders left unfilled: $(echo "$left" | sort -u | tr '\n' ' ')"
    fi
    printf '%s\n' "$out"
    ;;
  *)
    die "usage: $PROG archive TARGET VERSION DIST_DIR | fill VERSION BASE_URL HOMEPAGE DIST_DIR"
    ;;
esac
