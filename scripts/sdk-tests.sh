#!/usr/bin/env bash
# Drive the local cloud simulator with the official Alibaba Cloud Python SDKs.
#
# What it does, in order:
#   1. makes (or reuses) a virtualenv OUTSIDE the checkout, keyed by the hash of
#      tests/sdk/requirements.txt, and installs the pinned SDKs into it;
#   2. builds the `alicloud-rollouts` binary (or uses $ALICLOUD_ROLLOUTS_BIN);
#   3. starts `alicloud-rollouts simulator` on a free loopback port with a fast clock;
#   4. runs pytest on tests/sdk (extra arguments are passed to pytest);
#   5. stops the simulator and exits non-zero when anything failed, including
#      "no tests collected" (pytest exit code 5).
#
# Environment knobs:
#   ALICLOUD_ROLLOUTS_BIN  use this simulator binary instead of building one
#   SIM_TIME_SCALE         simulator --time-scale (default 10)
#   CARGO_TARGET_DIR       honoured by the build and when locating the binary
#   XDG_CACHE_HOME         where the venv lives (default ~/.cache)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
req="$repo/tests/sdk/requirements.txt"
time_scale="${SIM_TIME_SCALE:-10}"

log() { printf 'sdk-tests: %s\n' "$*" >&2; }

# ------------------------------------------------------------------ python + venv
python_bin="$(command -v python3 || true)"
if [[ -z "$python_bin" ]]; then
    log "python3 is required"
    exit 2
fi

as_root() {
    if [[ "$(id -u)" == 0 ]]; then "$@"; elif command -v sudo >/dev/null; then sudo -n "$@"; else return 1; fi
}

ensure_venv_module() {
    if "$python_bin" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        return 0
    fi
    log "python3 cannot create virtualenvs; installing python3-venv with apt-get"
    local minor
    minor="$("$python_bin" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 || true
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >&2 ||
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "python${minor}-venv" >&2
}

req_hash="$( { cat "$req"; "$python_bin" -c 'import sys; print(sys.version)'; } | sha256sum | cut -c1-16)"
venv_root="${XDG_CACHE_HOME:-$HOME/.cache}/alicloud-rollouts/sdk-venv"
venv="$venv_root/$req_hash"
if [[ ! -f "$venv/.installed" ]]; then
    ensure_venv_module
    rm -rf "$venv"
    mkdir -p "$venv_root"
    log "creating virtualenv $venv"
    "$python_bin" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2 || true
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" >&2
    touch "$venv/.installed"
fi
py="$venv/bin/python"

# ------------------------------------------------------------------ simulator binary
bin="${ALICLOUD_ROLLOUTS_BIN:-}"
if [[ -z "$bin" ]]; then
    log "building the simulator (cargo build --bin alicloud-rollouts)"
    (cd "$repo" && cargo build --quiet --bin alicloud-rollouts)
    target_dir="$(cd "$repo" && cargo metadata --format-version 1 --no-deps |
        "$py" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
    bin="$target_dir/debug/alicloud-rollouts"
fi
if [[ ! -x "$bin" ]]; then
    log "simulator binary not found at $bin"
    exit 2
fi

# ------------------------------------------------------------------ start the simulator
work="$(mktemp -d "${TMPDIR:-/tmp}/sdk-tests.XXXXXX")"
sim_pid=""
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    if [[ -n "$sim_pid" ]] && kill -0 "$sim_pid" 2>/dev/null; then
        kill "$sim_pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$sim_pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$sim_pid" 2>/dev/null || true
        wait "$sim_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# The SDK reads HTTP(S)_PROXY itself and would send loopback traffic to a proxy.
unset HTTP_PROXY HTTPS_PROXY http_proxy https_proxy ALL_PROXY all_proxy

started=""
for attempt in 1 2 3; do
    port="$(free_port)"
    NO_COLOR=1 "$bin" simulator --listen "127.0.0.1:$port" --demo --time-scale "$time_scale" \
        >"$work/simulator.log" 2>&1 &
    sim_pid=$!
    if "$py" - "$port" "$sim_pid" <<'EOF'
import os, sys, time, urllib.request
port, pid = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit(1)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_sim/state", timeout=2) as r:
            if r.status == 200:
                sys.exit(0)
    except Exception:
        time.sleep(0.1)
sys.exit(1)
EOF
    then
        started=yes
        break
    fi
    log "simulator did not come up on port $port (attempt $attempt):"
    tail -n 20 "$work/simulator.log" >&2 || true
    kill "$sim_pid" 2>/dev/null || true
    wait "$sim_pid" 2>/dev/null || true
    sim_pid=""
done
if [[ -z "$started" ]]; then
    log "could not start the simulator"
    exit 1
fi
log "simulator pid $sim_pid on 127.0.0.1:$port (time scale $time_scale)"

# ------------------------------------------------------------------ run the tests
export SIM_ENDPOINT="127.0.0.1:$port"
export ALICLOUD_ROLLOUTS_BIN="$bin"   # for tests that start a differently configured simulator
export SIM_TIME_SCALE="$time_scale"
export PYTHONDONTWRITEBYTECODE=1
set +e
(cd "$repo/tests/sdk" && "$py" -m pytest -p no:cacheprovider -ra "$@")
rc=$?
set -e

if [[ $rc == 5 ]]; then
    log "pytest collected no tests: failing"
    rc=1
fi
if [[ $rc != 0 ]]; then
    log "tests failed (exit $rc); last simulator log lines:"
    tail -n 15 "$work/simulator.log" >&2 || true
fi
exit "$rc"
