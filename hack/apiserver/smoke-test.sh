#!/usr/bin/env bash
# Checks that the local API server (scripts/local-apiserver.sh) behaves like Kubernetes in
# the ways this project relies on. Starts it if needed; leaves it running.
#
#   hack/apiserver/smoke-test.sh
#
# Prints one line per check and "N passed, N failed" at the end; exits 1 on a failure.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$HERE/../.." && pwd)

exports=$("$REPO_ROOT/scripts/local-apiserver.sh" up)
eval "$exports"

NS=smoke-$$-$RANDOM
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
passed=0
failed=0

check() { # name, command...
  local name=$1
  shift
  if "$@" >"$WORK/out" 2>&1; then
    passed=$((passed + 1))
    echo "ok   $name"
  else
    failed=$((failed + 1))
    echo "FAIL $name"
    sed 's/^/     /' "$WORK/out"
  fi
}

# Succeeds when "$@" fails and its output contains $1.
fails_with() {
  local want=$1
  shift
  local out
  if out=$("$@" 2>&1); then
    echo "unexpectedly succeeded: $out"
    return 1
  fi
  grep -qF -- "$want" <<<"$out" || {
    echo "wanted '$want' in: $out"
    return 1
  }
}

output_is() { # want, command...
  local want=$1 got
  shift
  got=$("$@")
  [[ $got == "$want" ]] || {
    echo "wanted '$want', got '$got'"
    return 1
  }
}

cat >"$WORK/crd.yaml" <<'EOF'
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.smoke.alicloud-rollouts.io
spec:
  group: smoke.alicloud-rollouts.io
  scope: Namespaced
  names: {plural: gadgets, singular: gadget, kind: Gadget}
  versions:
  - name: v1alpha1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            x-kubernetes-validations:
            - rule: "self.low <= self.high"
              message: "low must not exceed high"
            properties:
              low: {type: integer, default: 0}
              high: {type: integer}
          status:
            type: object
            properties:
              phase: {type: string}
EOF

gadget() { # name low high
  printf 'apiVersion: smoke.alicloud-rollouts.io/v1alpha1\nkind: Gadget\nmetadata: {name: %s, namespace: %s}\nspec: {low: %s, high: %s}\n' \
    "$1" "$NS" "$2" "$3"
}

check "healthz" output_is ok kubectl get --raw /healthz
check "readyz" output_is ok kubectl get --raw /readyz
check "kubectl version" kubectl version
check "api-resources lists Lease and Event" \
  bash -c 'kubectl api-resources | grep -q "coordination.k8s.io/v1 .*Lease" && kubectl api-resources | grep -q "events.k8s.io/v1 .*Event"'
check "register a CRD" kubectl apply --validate=false -f "$WORK/crd.yaml"
check "CRD established" kubectl wait --for condition=Established --timeout=30s crd/gadgets.smoke.alicloud-rollouts.io
check "create a valid object (kubectl validating it too)" bash -c "$(declare -f gadget); NS=$NS; gadget ok 1 3 | kubectl apply -f -"
check "CEL rule refuses a bad object" \
  fails_with "low must not exceed high" bash -c "$(declare -f gadget); NS=$NS; gadget bad 5 2 | kubectl apply --validate=false -f -"
check "defaulting" bash -c "printf 'apiVersion: smoke.alicloud-rollouts.io/v1alpha1\nkind: Gadget\nmetadata: {name: dflt, namespace: $NS}\nspec: {high: 2}\n' |
  kubectl apply --validate=false -f - >/dev/null && [[ \$(kubectl get gadget -n $NS dflt -o jsonpath='{.spec.low}') == 0 ]]"
check "server-side apply of /status" bash -c "printf 'apiVersion: smoke.alicloud-rollouts.io/v1alpha1\nkind: Gadget\nmetadata: {name: ok, namespace: $NS}\nstatus: {phase: Ready}\n' |
  kubectl apply --server-side --field-manager=smoke --subresource=status --validate=false -f -"
check "status set, managed by 'smoke' on status" bash -c "
  [[ \$(kubectl get gadget -n $NS ok -o jsonpath='{.status.phase}') == Ready ]] &&
  kubectl get gadget -n $NS ok -o jsonpath='{range .metadata.managedFields[*]}{.manager}/{.subresource} {end}' | grep -q 'smoke/status'"
check "kubectl get <kind>" bash -c "kubectl get gadgets -n $NS | grep -q '^ok '"
check "create a Lease" bash -c "kubectl create --validate=false -f - <<EOF
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: smoke-leader, namespace: $NS}
spec: {holderIdentity: a, leaseDurationSeconds: 15, renewTime: '2026-01-01T00:00:00.000000Z', leaseTransitions: 0}
EOF"
check "merge-patch the Lease" kubectl patch lease -n "$NS" smoke-leader --type=merge -p '{"spec":{"holderIdentity":"b","leaseTransitions":1}}'
check "stale resourceVersion conflicts (409)" \
  fails_with "the object has been modified" bash -c "kubectl get lease -n $NS smoke-leader -o json |
    sed 's/\"resourceVersion\": \"[0-9]*\"/\"resourceVersion\": \"1\"/' | kubectl replace --validate=false -f -"
check "create an events.k8s.io Event" bash -c "kubectl create --validate=false -f - <<EOF
apiVersion: events.k8s.io/v1
kind: Event
metadata: {name: ok.17f0000000000000, namespace: $NS}
eventTime: '2026-01-01T00:00:00.000000Z'
reportingController: alicloud-rollouts.io/smoke
reportingInstance: smoke-1
action: Reconcile
reason: Synced
type: Normal
note: smoke test
regarding: {apiVersion: smoke.alicloud-rollouts.io/v1alpha1, kind: Gadget, name: ok, namespace: $NS}
EOF"
check "finalizer holds deletion" bash -c "
  kubectl patch gadget -n $NS ok --type=merge -p '{\"metadata\":{\"finalizers\":[\"smoke/hold\"]}}' >/dev/null &&
  kubectl delete gadget -n $NS ok --wait=false >/dev/null &&
  [[ -n \$(kubectl get gadget -n $NS ok -o jsonpath='{.metadata.deletionTimestamp}') ]] &&
  kubectl patch gadget -n $NS ok --type=json -p '[{\"op\":\"remove\",\"path\":\"/metadata/finalizers\"}]' >/dev/null &&
  kubectl wait --for=delete gadget -n $NS ok --timeout=10s"

kubectl delete --ignore-not-found crd/gadgets.smoke.alicloud-rollouts.io >/dev/null 2>&1 || true
kubectl delete --ignore-not-found lease -n "$NS" smoke-leader >/dev/null 2>&1 || true
kubectl delete --ignore-not-found events.events.k8s.io -n "$NS" --all >/dev/null 2>&1 || true

echo "$passed passed, $failed failed"
((failed == 0))
