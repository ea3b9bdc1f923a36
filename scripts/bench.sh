#!/usr/bin/env bash
# Benchmark of the operator at scale, against the local API server and the simulator.
# Prints figures, asserts nothing about speed:
#   - time for N EasServiceRollouts and N EsaRoutineRollouts to become Ready;
#   - reaction latency: from a `kubectl patch` to the cloud call it causes (p50, max);
#   - cloud API calls per resource per minute once everything is settled;
#   - the operator's memory (peak and current RSS) with 2N objects.
#
#   scripts/bench.sh [N]      N defaults to 200 (of each kind)
#
# Environment: BENCH_SETTLE_SECONDS (60), BENCH_SETTLED_POLL (the operator's --settled-poll,
# 30s so that settled polls fall inside the counting window), CARGO_TARGET_DIR.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
N=${1:-200}
SETTLE=${BENCH_SETTLE_SECONDS:-60}
SETTLED_POLL=${BENCH_SETTLED_POLL:-30s}
NS=bench
WORK=$(mktemp -d)
export ALICLOUD_ROLLOUTS_STATE="$WORK/apiserver"
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  bash "$ROOT/scripts/local-apiserver.sh" down >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now_ms() { date +%s%3N; }
calls() { curl -fsS "http://127.0.0.1:$SIM_PORT/_sim/calls"; }
total_calls() { calls | python3 -c 'import json,sys; print(sum(json.load(sys.stdin).values()))'; }
calls_of() { calls | python3 -c "import json,sys; print(json.load(sys.stdin).get('$1', 0))"; }
ready_count() {
  kubectl -n "$NS" get "$1" -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' |
    grep -c '^True$' || true
}
wait_until() { # seconds, command...
  local limit=$1
  shift
  local deadline=$((SECONDS + limit))
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.05
  done
}

echo "building..." >&2
(cd "$ROOT" && cargo build --quiet --bin alicloud-rollouts)
BIN="$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/alicloud-rollouts"

exports=$(bash "$ROOT/scripts/local-apiserver.sh" up)
eval "$exports"

SIM_PORT=$(free_port)
OP_PORT=$(free_port)
"$BIN" simulator --listen "127.0.0.1:$SIM_PORT" --time-scale 60 >"$WORK/sim.log" 2>&1 &
PIDS+=($!)
wait_until 30 curl -fsS -o /dev/null "http://127.0.0.1:$SIM_PORT/_sim/state"

# N services with rollouts enabled and N routines, seeded into the simulator.
python3 - "$N" >"$WORK/seed.json" <<'EOF'
import json, sys
n = int(sys.argv[1])
print(json.dumps({
    "services": [{"name": f"svc-{i}", "region": "cn-shanghai", "replicas": 4} for i in range(n)],
    "routines": [{"name": f"routine-{i}", "codeVersions": ["1", "2"], "deployed": "1"} for i in range(n)],
}))
EOF
curl -fsS -XPOST -H 'content-type: application/json' --data-binary @"$WORK/seed.json" \
  "http://127.0.0.1:$SIM_PORT/_sim/seed" >/dev/null

kubectl apply --validate=false --server-side -f "$ROOT/crds/" >/dev/null
kubectl wait --for=condition=Established --timeout=60s crd --all >/dev/null
python3 - "$N" >"$WORK/objects.yaml" <<'EOF'
import sys
n = int(sys.argv[1])
for i in range(n):
    print(f"""---
apiVersion: rollouts.alicloud.dev/v1alpha1
kind: EasServiceRollout
metadata: {{name: svc-{i}}}
spec: {{region: cn-shanghai, serviceName: svc-{i}, strategy: {{partition: "0"}}}}
---
apiVersion: rollouts.alicloud.dev/v1alpha1
kind: EsaRoutineRollout
metadata: {{name: routine-{i}}}
spec: {{routine: routine-{i}, env: production, codeVersions: [{{codeVersion: "2", percentage: 10}}, {{codeVersion: "1", percentage: 90}}]}}""")
EOF
kubectl create namespace "$NS" >/dev/null
kubectl -n "$NS" apply --validate=false --server-side -f "$WORK/objects.yaml" >/dev/null

start=$(now_ms)
ALIBABA_CLOUD_ACCESS_KEY_ID=testid ALIBABA_CLOUD_ACCESS_KEY_SECRET=testsecret \
  "$BIN" run --namespaces "$NS" --kinds eas,routine \
  --eas-endpoint "http://127.0.0.1:$SIM_PORT" --esa-endpoint "http://127.0.0.1:$SIM_PORT" \
  --settled-poll "$SETTLED_POLL" --listen "127.0.0.1:$OP_PORT" >"$WORK/operator.log" 2>&1 &
OP_PID=$!
PIDS+=("$OP_PID")

all_ready() {
  [ "$(ready_count easservicerollouts)" -ge "$N" ] && [ "$(ready_count esaroutinerollouts)" -ge "$N" ]
}
if ! wait_until 600 all_ready; then
  echo "not all rollouts became Ready within 600 s: $(ready_count easservicerollouts) EAS, $(ready_count esaroutinerollouts) routines" >&2
  tail -20 "$WORK/operator.log" >&2
  exit 1
fi
ready_ms=$(($(now_ms) - start))

# Settled: count every cloud call for a while.
sleep 5
curl -fsS -XDELETE "http://127.0.0.1:$SIM_PORT/_sim/calls" >/dev/null
sleep "$SETTLE"
settled_calls=$(total_calls)

# Reaction latency: a spec change to the cloud call it causes, one resource at a time.
latencies=()
for i in 0 1 2 3 4 5 6 7 8 9; do
  before=$(calls_of UpdateServiceRollout)
  t0=$(now_ms)
  kubectl -n "$NS" patch easservicerollout "svc-$i" --type merge -p '{"spec":{"paused":true}}' >/dev/null
  wait_until 60 bash -c "[ \$(curl -fsS http://127.0.0.1:$SIM_PORT/_sim/calls | python3 -c 'import json,sys; print(json.load(sys.stdin).get(\"UpdateServiceRollout\", 0))') -gt $before ]"
  latencies+=($(($(now_ms) - t0)))
done
read -r p50 pmax < <(printf '%s\n' "${latencies[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)], a[NR]}')

hwm_kb=$(awk '/VmHWM/ {print $2}' "/proc/$OP_PID/status")
rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$OP_PID/status")

echo
echo "alicloud-rollouts benchmark: $N EasServiceRollouts + $N EsaRoutineRollouts (simulator, local API server)"
awk -v n=$((2 * N)) -v ms="$ready_ms" 'BEGIN { printf "  all %d Ready after start:               %.1f s\n", n, ms / 1000 }'
printf '  reaction latency patch -> cloud call: p50 %d ms, max %d ms (10 samples, kubectl included)\n' "$p50" "$pmax"
awk -v c="$settled_calls" -v s="$SETTLE" -v n=$((2 * N)) -v p="$SETTLED_POLL" \
  'BEGIN { printf "  settled cloud calls:                  %d in %d s = %.2f per resource per minute (--settled-poll %s)\n", c, s, c * 60 / s / n, p }'
printf '  operator memory:                      peak %d MiB, now %d MiB\n' $((hwm_kb / 1024)) $((rss_kb / 1024))
