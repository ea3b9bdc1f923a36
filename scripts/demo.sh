#!/usr/bin/env bash
# alicloud-rollouts in two minutes, on this machine, with no cloud account:
# a local Kubernetes control plane, the cloud simulator, the CRDs, three example rollouts and
# the operator, then the rollouts progressing in `kubectl get alicloud-rollouts`.
#
#   scripts/demo.sh        start everything (builds the binary if needed) and watch
#   scripts/demo.sh down   stop the operator, the simulator and the local API server
#
# Environment: DEMO_SIM_PORT (18080), DEMO_METRICS_PORT (18081), DEMO_TIME_SCALE (60: a
# 5-minute batch interval takes 5 s), DEMO_WATCH_SECONDS (90), CARGO_TARGET_DIR.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${XDG_CACHE_HOME:-$HOME/.cache}/alicloud-rollouts/demo
SIM_PORT=${DEMO_SIM_PORT:-18080}
METRICS_PORT=${DEMO_METRICS_PORT:-18081}
TIME_SCALE=${DEMO_TIME_SCALE:-60}
WATCH_SECONDS=${DEMO_WATCH_SECONDS:-90}
NS=demo
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug/alicloud-rollouts

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
die() {
  printf 'demo.sh: %s\n' "$*" >&2
  exit 1
}

stop_pid() {
  local file=$1
  if [[ -f $file ]]; then
    local pid
    pid=$(cat "$file")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$file"
  fi
}

down() {
  stop_pid "$STATE/operator.pid"
  stop_pid "$STATE/simulator.pid"
  bash "$ROOT/scripts/local-apiserver.sh" down >/dev/null 2>&1 || true
  echo "demo stopped (logs kept in $STATE)"
}

wait_http() {
  local url=$1 what=$2
  for _ in $(seq 1 100); do
    if curl -fsS -o /dev/null "$url" 2>/dev/null; then
      return 0
    fi
    sleep 0.2
  done
  die "$what did not answer at $url (see $STATE/*.log)"
}

up() {
  command -v curl >/dev/null || die "curl is needed"
  mkdir -p "$STATE"
  # A previous demo's processes would hold the ports.
  stop_pid "$STATE/operator.pid"
  stop_pid "$STATE/simulator.pid"

  say "Building alicloud-rollouts (the first build takes several minutes)"
  (cd "$ROOT" && cargo build --bin alicloud-rollouts)

  say "Starting the local Kubernetes control plane (the first start builds it from the Go module proxy)"
  local exports
  exports=$(bash "$ROOT/scripts/local-apiserver.sh" up)
  eval "$exports"
  printf '%s\n' "$exports" >"$STATE/env"

  say "Starting the cloud simulator on 127.0.0.1:$SIM_PORT (demo seed, time x$TIME_SCALE)"
  "$BIN" simulator --listen "127.0.0.1:$SIM_PORT" --demo --time-scale "$TIME_SCALE" \
    >"$STATE/simulator.log" 2>&1 &
  echo $! >"$STATE/simulator.pid"
  wait_http "http://127.0.0.1:$SIM_PORT/_sim/state" "the simulator"

  say "Installing the CRDs"
  kubectl apply --validate=false --server-side --force-conflicts -f "$ROOT/crds/" >/dev/null
  kubectl wait --for=condition=Established --timeout=60s \
    crd/easservicerollouts.rollouts.alicloud.dev \
    crd/esaroutinerollouts.rollouts.alicloud.dev \
    crd/esacontainerapprollouts.rollouts.alicloud.dev \
    crd/cloudaccounts.rollouts.alicloud.dev >/dev/null

  say "Applying three rollouts in namespace $NS"
  kubectl get namespace "$NS" >/dev/null 2>&1 || kubectl create namespace "$NS" >/dev/null
  # The operator's own identity is used only through a CloudAccount: grant it to the
  # demo namespace (README, "Tenancy: cloud accounts").
  kubectl apply --validate=false -f - >/dev/null <<ACCOUNT
apiVersion: rollouts.alicloud.dev/v1alpha1
kind: CloudAccount
metadata:
  name: demo
spec:
  operatorIdentity: {}
  namespaces:
    names: [$NS]
  default: true
ACCOUNT
  kubectl -n "$NS" delete easservicerollout,esaroutinerollout,esacontainerapprollout --all \
    --ignore-not-found --wait=false >/dev/null 2>&1 || true
  kubectl -n "$NS" apply --validate=false -f - <<'EOF'
# PAI-EAS: push image v2 to llm-chat and roll it out 25% at a time, 5 minutes apart.
apiVersion: rollouts.alicloud.dev/v1alpha1
kind: EasServiceRollout
metadata:
  name: llm-chat
spec:
  region: cn-shanghai
  serviceName: llm-chat
  strategy:
    batch:
      size: "25%"
      interval: 5m
  deletionPolicy: Delete
  serviceConfig:
    containers:
      - image: registry.cn-shanghai.aliyuncs.com/demo/llm-chat:v2
---
# ESA routine: move production from version ...001 to ...002 in steps.
apiVersion: rollouts.alicloud.dev/v1alpha1
kind: EsaRoutineRollout
metadata:
  name: edge-auth
spec:
  routine: edge-auth
  env: production
  canary:
    stableVersion: "1710000000000000001"
    canaryVersion: "1710000000000000002"
    steps:
      - percentage: 10
        pause: 10s
      - percentage: 50
        pause: 10s
---
# ESA edge container app: publish the new version to half of production traffic.
apiVersion: rollouts.alicloud.dev/v1alpha1
kind: EsaContainerAppRollout
metadata:
  name: edge-app
spec:
  appId: app-8806886757837900
  versionId: ver-8796263716165101
  env: production
  percentage: 50
EOF

  say "Starting the operator (log: $STATE/operator.log, metrics: http://127.0.0.1:$METRICS_PORT/metrics)"
  ALIBABA_CLOUD_ACCESS_KEY_ID=testid ALIBABA_CLOUD_ACCESS_KEY_SECRET=testsecret \
    "$BIN" run --namespaces "$NS" \
    --eas-endpoint "http://127.0.0.1:$SIM_PORT" --esa-endpoint "http://127.0.0.1:$SIM_PORT" \
    --sts-endpoint "http://127.0.0.1:$SIM_PORT" --cms-endpoint "http://127.0.0.1:$SIM_PORT" \
    --active-poll 1s --listen "127.0.0.1:$METRICS_PORT" \
    >"$STATE/operator.log" 2>&1 &
  echo $! >"$STATE/operator.pid"
  wait_http "http://127.0.0.1:$METRICS_PORT/healthz" "the operator"

  say "Watching the rollouts (up to ${WATCH_SECONDS}s; Ctrl-C stops watching, not the demo)"
  local deadline=$((SECONDS + WATCH_SECONDS))
  while ((SECONDS < deadline)); do
    printf '\n--- %s\n' "$(date -u +%H:%M:%S)"
    kubectl -n "$NS" get alicloud-rollouts 2>&1 || true
    if [[ $(kubectl -n "$NS" get easservicerollout,esaroutinerollout,esacontainerapprollout \
      -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' \
      2>/dev/null | grep -c '^True$') -ge 3 ]]; then
      printf '\nAll three rollouts are Ready.\n'
      break
    fi
    sleep 3
  done

  cat <<EOF

Everything is still running. In this shell:
  eval "\$(cat $STATE/env)"

Try next:
  # the EAS rollout: start a new version, pause it half-way, resume it
  kubectl -n $NS patch easro llm-chat --type merge -p '{"spec":{"serviceConfig":{"containers":[{"image":"registry.cn-shanghai.aliyuncs.com/demo/llm-chat:v3"}]}}}'
  kubectl -n $NS patch easro llm-chat --type merge -p '{"spec":{"paused":true}}'
  kubectl -n $NS patch easro llm-chat --type merge -p '{"spec":{"paused":false}}'
  kubectl -n $NS wait --for=condition=Ready --timeout=120s easro/llm-chat
  # roll back: put the previous image back (a new version rolls out the same way)
  kubectl -n $NS patch easro llm-chat --type merge -p '{"spec":{"serviceConfig":{"containers":[{"image":"registry.cn-shanghai.aliyuncs.com/demo/llm-chat:v1"}]}}}'
  # the routine: all traffic back on the stable version
  kubectl -n $NS patch esarr edge-auth --type merge -p '{"spec":{"rollback":true}}'
  # the container app: widen, then roll back
  kubectl -n $NS patch esacr edge-app --type merge -p '{"spec":{"percentage":100}}'
  kubectl -n $NS patch esacr edge-app --type merge -p '{"spec":{"rollback":true}}'
  # watch, and see what the operator did
  kubectl -n $NS get alicloud-rollouts -w
  kubectl -n $NS get events.events.k8s.io
  curl -s http://127.0.0.1:$SIM_PORT/_sim/calls

Stop everything:
  scripts/demo.sh down
EOF
}

case ${1:-up} in
up) up ;;
down) down ;;
*) die "usage: scripts/demo.sh [up|down]" ;;
esac
