#!/usr/bin/env bash
# The full test suite: lint, unit and integration tests (against the local real
# Kubernetes control plane and the cloud simulator), and the official Python SDK
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

# Build output goes to ./target unless CARGO_TARGET_DIR says otherwise (CI keeps it in ~/.cache).
step() { printf '\n==> %s\n' "$*" >&2; }

# A linter that is not installed (it cannot be fetched on every machine) is said loudly,
# and the rest of the suite still runs.
lint_missing=()
if [ "$lint" = 1 ]; then
  if cargo fmt --version >/dev/null 2>&1; then
    step "cargo fmt --check"
    cargo fmt --all --check
  else
    lint_missing+=("rustfmt (cargo fmt)")
  fi
  if cargo clippy --version >/dev/null 2>&1; then
    step "cargo clippy -D warnings"
    cargo clippy --all-targets --locked -- -D warnings
  else
    lint_missing+=("clippy (cargo clippy)")
  fi
  for tool in "${lint_missing[@]}"; do
    printf '\n!!!!!!!! LINT NOT RUN: %s is not installed on this machine; the code was NOT checked by it !!!!!!!!\n\n' "$tool" >&2
  done
fi

step "local Kubernetes control plane"
apiserver_env=$(bash scripts/local-apiserver.sh up)
eval "$apiserver_env"
kubectl version --client >/dev/null

step "Go tools from their modules: Helm, Flux's kstatus, Argo CD's Lua VM (cached)"
for tool in helm kstatus argocd-lua; do
  bash scripts/go-tool.sh "$tool" build
done

logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT

step "the image writer and the static binary for the image test (dev profile; cached)"
bash scripts/image.sh tool >/dev/null
bash scripts/image.sh static-binary --profile dev >/dev/null

step "cargo test (unit, CRD schema, client and simulator over HTTP, end to end, image)"
cargo build --locked --bin alicloud-rollouts
rust_rc=0
cargo test --locked --no-fail-fast -- --test-threads=2 2>&1 | tee "$logs/cargo.log" || rust_rc=$?

step "end-to-end rollouts again, against a cloud whose reads lag its writes (3 s) and that reports an accepted pause late (5 s)"
ALICLOUD_ROLLOUTS_SIM_READ_LAG=3 ALICLOUD_ROLLOUTS_SIM_PAUSE_LAG=5 \
  cargo test --locked --no-fail-fast --test e2e_eas --test e2e_esa --test e2e_safety --test e2e_steps -- --test-threads=2 2>&1 \
  | tee -a "$logs/cargo.log" || rust_rc=$?

step "official Python SDKs against the simulator"
sdk_rc=0
bash scripts/sdk-tests.sh 2>&1 | tee "$logs/sdk.log" || sdk_rc=$?

# One closing line for the whole suite: Rust and Python counts added up.
read -r passed failed < <(
  awk '
    /^test result: /   { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
    /^=+ .* in [0-9.]+s/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
    END { print p + 0, f + 0 }
  ' "$logs/cargo.log" "$logs/sdk.log"
)
if [ "$rust_rc" -ne 0 ] || [ "$sdk_rc" -ne 0 ]; then
  [ "$failed" -gt 0 ] || failed=1
  echo "suite: $passed passed, $failed failed"
  exit 1
fi
for tool in "${lint_missing[@]}"; do
  echo "!!!!!!!! LINT NOT RUN: $tool is missing (see above) !!!!!!!!" >&2
done
if [ "$passed" -eq 0 ]; then
  echo "no test ran: treating as a failure" >&2
  exit 1
fi
echo "suite: $passed passed, $failed failed"
