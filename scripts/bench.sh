#!/usr/bin/env bash
# The benchmark, one command: the operator in release mode against a fresh local API server
# (scripts/local-apiserver.sh) and the simulator, measured against its targets. Prints a
# table (figure, measured, target, met?) and writes the same as JSON. Heavy: not part of
# the tests or CI. See README.md, "Performance".
#
#   scripts/bench.sh [N] [bench options]   N resources (default 5000), a third of each kind
#   scripts/bench.sh --soak DURATION       the fault campaign for DURATION (e.g. 30m)
#
# Options after N go to `alicloud-rollouts bench` (--changes, --idle-window, --out, ...;
# `alicloud-rollouts bench --help`). Environment: BENCH_OUT (bench.json), BENCH_LOGS
# (bench-logs), CARGO_TARGET_DIR.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SOAK=
N=5000
if [[ ${1:-} == --soak ]]; then
  SOAK=${2:?--soak needs a duration, e.g. 30m}
  shift 2
elif [[ ${1:-} =~ ^[0-9]+$ ]]; then
  N=$1
  shift
fi
OUT=${BENCH_OUT:-$PWD/bench.json}
LOGS=${BENCH_LOGS:-$PWD/bench-logs}
WORK=$(mktemp -d)
# A control plane of its own, thrown away afterwards: thousands of objects stay out of the
# one the tests use.
export ALICLOUD_ROLLOUTS_STATE="$WORK/apiserver"

cleanup() {
  bash "$ROOT/scripts/local-apiserver.sh" down >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "bench: building (release)..." >&2
(cd "$ROOT" && cargo build --release --quiet --bin alicloud-rollouts)
TARGET=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
BIN="$TARGET/release/alicloud-rollouts"

exports=$(bash "$ROOT/scripts/local-apiserver.sh" up)
eval "$exports"
kubectl apply --validate=false --server-side -f "$ROOT/crds/" >/dev/null
kubectl wait --for=condition=Established --timeout=60s crd --all >/dev/null

if [[ -n $SOAK ]]; then
  "$BIN" bench --soak "$SOAK" --control-plane-script "$ROOT/scripts/local-apiserver.sh" \
    --log-dir "$LOGS" --out "$OUT" "$@"
  exit
fi
"$BIN" bench --resources "$N" --log-dir "$LOGS" --out "$OUT" "$@"
