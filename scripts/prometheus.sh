#!/usr/bin/env bash
# A real Prometheus (Debian's `prometheus` package) scraping the simulator's /metrics.
#
#   scripts/prometheus.sh up HOST:PORT   start it (or restart it on a new target) scraping
#                                        http://HOST:PORT/metrics every second; waits until
#                                        it is ready; prints its URL
#   scripts/prometheus.sh url            print the URL of the running one
#   scripts/prometheus.sh down           stop it
#
# State (config, TSDB, log, pid) lives in $ALICLOUD_ROLLOUTS_PROMETHEUS_STATE, default
# ~/.cache/alicloud-rollouts/prometheus. It listens on a free port on 127.0.0.1.
# Installs the package with apt-get when it is missing and we are root (.ci/run does it).
set -euo pipefail

state="${ALICLOUD_ROLLOUTS_PROMETHEUS_STATE:-${XDG_CACHE_HOME:-$HOME/.cache}/alicloud-rollouts/prometheus}"
mkdir -p "$state"

die() { echo "prometheus.sh: $*" >&2; exit 1; }

ensure_installed() {
  command -v prometheus >/dev/null 2>&1 && return 0
  [ "$(id -u)" = 0 ] || die "prometheus is not installed: apt-get install prometheus (as root)"
  echo "prometheus.sh: installing Debian's prometheus package" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends prometheus >/dev/null
  # The package may start its own service; ours runs on its own port and state.
}

running() {
  [ -f "$state/pid" ] && kill -0 "$(cat "$state/pid")" 2>/dev/null
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

down() {
  if running; then
    local pid
    pid=$(cat "$state/pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$state/pid" "$state/url"
}

up() {
  local target="${1:-}"
  [[ "$target" =~ ^[^[:space:]/]+:[0-9]+$ ]] || die "usage: prometheus.sh up HOST:PORT (the simulator)"
  ensure_installed
  down
  local port
  port=$(free_port)
  cat >"$state/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: simulator
    metrics_path: /metrics
    static_configs:
      - targets: ["$target"]
EOF
  rm -rf "$state/data"
  nohup prometheus \
    --config.file="$state/prometheus.yml" \
    --storage.tsdb.path="$state/data" \
    --storage.tsdb.retention.time=2h \
    --web.listen-address="127.0.0.1:$port" \
    >"$state/log" 2>&1 </dev/null &
  echo $! >"$state/pid"
  local url="http://127.0.0.1:$port"
  for _ in $(seq 300); do
    if curl -fsS "$url/-/ready" >/dev/null 2>&1; then
      echo "$url" >"$state/url"
      echo "$url"
      return 0
    fi
    running || { tail -n 20 "$state/log" >&2; die "prometheus exited"; }
    sleep 0.1
  done
  tail -n 20 "$state/log" >&2
  down
  die "prometheus did not get ready within 30s"
}

case "${1:-}" in
  up) shift; up "$@" ;;
  url) running && [ -f "$state/url" ] || die "not running"; cat "$state/url" ;;
  down) down ;;
  *) echo "usage: scripts/prometheus.sh up HOST:PORT | url | down" >&2; exit 2 ;;
esac
