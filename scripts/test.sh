#!/usr/bin/env bash
# The full test suite: lint, unit and integration tests (against the local real
# Kubernetes API server and the cloud simulator), and the official Python SDK
# conformance tests against the simulator.
#
#   scripts/test.sh            everything
#   scripts/test.sh --no-lint  skip fmt/clippy (faster while iterating)
set -euo pipefail
cd "$(dirname "$0")/.."

lint=1
for arg in "$@"; do
  case "$arg" in
    --no-lint) lint=0 ;;
    *) echo "usage: scripts/test.sh [--no-lint]" >&2; exit 2 ;;
  esac
done

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/alicloud-rollouts/target}"
step() { printf '\n==> %s\n' "$*" >&2; }

if [ "$lint" = 1 ]; then
  step "cargo fmt --check"
  cargo fmt --all --check
  step "cargo clippy -D warnings"
  cargo clippy --all-targets --locked -- -D warnings
fi

step "local Kubernetes API server"
eval "$(bash scripts/local-apiserver.sh up)"
kubectl version --client >/dev/null

step "cargo test (unit, CRD schema, client and simulator over HTTP, end to end)"
cargo build --locked --bin alicloud-rollouts
cargo test --locked --no-fail-fast -- --test-threads=2

step "official Python SDKs against the simulator"
bash scripts/sdk-tests.sh

step "all tests passed"
