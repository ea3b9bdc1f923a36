#!/usr/bin/env bash
# Checks that the local control plane (scripts/local-apiserver.sh) behaves like a Kubernetes
# cluster in the ways this project relies on: custom resources, native Leases and Events,
# namespaces, Secrets, ServiceAccount tokens, RBAC, Pod Security admission, the
# controller-manager's Deployment, garbage-collection and namespace controllers. Starts it
# if needed; leaves it running.
#
#   hack/controlplane/smoke-test.sh
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

# Retries "$@" for up to $1 seconds.
eventually() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
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

# A Pod template that Pod Security "restricted" admits.
restricted_pod_spec='
      securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: app
        image: registry.invalid/app:1
        securityContext:
          allowPrivilegeEscalation: false
          capabilities: {drop: [ALL]}'

# --- the control plane itself
check "healthz" output_is ok kubectl get --raw /healthz
check "readyz" output_is ok kubectl get --raw /readyz
check "server version is a release" bash -c 'kubectl version -o json | grep -q "\"gitVersion\": \"v1\.[0-9]*\.[0-9]*\""'
check "Lease and Event are native (no CRDs)" bash -c '
  kubectl api-resources | grep -q "coordination.k8s.io/v1 .*Lease" &&
  kubectl api-resources | grep -q "events.k8s.io/v1 .*Event" &&
  ! kubectl get crd -o name | grep -qE "leases|events"'
check "the core group serves Pods, Secrets, ConfigMaps" bash -c '
  kubectl api-resources --api-group= -o name | grep -qx pods &&
  kubectl api-resources --api-group= -o name | grep -qx secrets &&
  kubectl api-resources --api-group= -o name | grep -qx configmaps'
check "objects in a missing namespace are refused" \
  fails_with "not found" kubectl create configmap -n "$NS-missing" c --from-literal=a=b
check "create a namespace" kubectl create namespace "$NS"
check "the controller-manager gives it a default ServiceAccount" \
  eventually 30 kubectl get serviceaccount -n "$NS" default

# --- custom resources
check "register a CRD" kubectl apply --validate=false -f "$WORK/crd.yaml"
check "CRD established" kubectl wait --for condition=Established --timeout=30s crd/gadgets.smoke.alicloud-rollouts.io
check "create a valid object (kubectl validating it too)" \
  eventually 20 bash -c "$(declare -f gadget); NS=$NS; gadget ok 1 3 | kubectl apply -f -"
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
check "finalizer holds deletion" bash -c "
  kubectl patch gadget -n $NS ok --type=merge -p '{\"metadata\":{\"finalizers\":[\"smoke/hold\"]}}' >/dev/null &&
  kubectl delete gadget -n $NS ok --wait=false >/dev/null &&
  [[ -n \$(kubectl get gadget -n $NS ok -o jsonpath='{.metadata.deletionTimestamp}') ]] &&
  kubectl patch gadget -n $NS ok --type=json -p '[{\"op\":\"remove\",\"path\":\"/metadata/finalizers\"}]' >/dev/null &&
  kubectl wait --for=delete gadget -n $NS ok --timeout=10s"

# --- Leases and Events
check "create a Lease" bash -c "kubectl create -f - <<EOF
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: smoke-leader, namespace: $NS}
spec: {holderIdentity: a, leaseDurationSeconds: 15, renewTime: '2026-01-01T00:00:00.000000Z', leaseTransitions: 0}
EOF"
check "merge-patch the Lease" kubectl patch lease -n "$NS" smoke-leader --type=merge -p '{"spec":{"holderIdentity":"b","leaseTransitions":1}}'
check "stale resourceVersion conflicts (409)" \
  fails_with "the object has been modified" bash -c "kubectl get lease -n $NS smoke-leader -o json |
    sed 's/\"resourceVersion\": \"[0-9]*\"/\"resourceVersion\": \"1\"/' | kubectl replace -f -"
check "create an events.k8s.io Event" bash -c "kubectl create -f - <<EOF
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
check "an Event without reportingInstance is refused (real validation)" \
  fails_with "reportingInstance" bash -c "kubectl create -f - <<EOF
apiVersion: events.k8s.io/v1
kind: Event
metadata: {name: bad.17f0000000000000, namespace: $NS}
eventTime: '2026-01-01T00:00:00.000000Z'
reportingController: alicloud-rollouts.io/smoke
action: Reconcile
reason: Synced
type: Normal
regarding: {apiVersion: v1, kind: ConfigMap, name: x, namespace: $NS}
EOF"

# --- Secrets, ServiceAccount tokens and RBAC
check "create and read a Secret" bash -c "
  kubectl create secret generic -n $NS creds --from-literal=key=s3cret >/dev/null &&
  [[ \$(kubectl get secret -n $NS creds -o jsonpath='{.data.key}' | base64 -d) == s3cret ]]"
check "a ServiceAccount token from the TokenRequest API" bash -c "
  kubectl create serviceaccount -n $NS robot >/dev/null &&
  kubectl create token -n $NS robot --duration=10m >$WORK/token && [[ -s $WORK/token ]]"
sa_kubectl() {
  kubectl --kubeconfig=/dev/null --server="$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')" \
    --certificate-authority="$WORK/ca.crt" --token="$(cat "$WORK/token")" "$@"
}
kubectl config view --raw --minify -o jsonpath='{.clusters[0].cluster.certificate-authority-data}' | base64 -d >"$WORK/ca.crt"
check "the token authenticates as the ServiceAccount" bash -c "$(declare -f sa_kubectl); WORK=$WORK;
  sa_kubectl auth whoami -o jsonpath='{.status.userInfo.username}' | grep -qx system:serviceaccount:$NS:robot"
check "RBAC: no grant, no read" \
  fails_with "forbidden" sa_kubectl get secret -n "$NS" creds
check "RBAC: a Role grants exactly what it names" bash -c "$(declare -f sa_kubectl); WORK=$WORK;
  kubectl create role -n $NS read-creds --verb=get --resource=secrets --resource-name=creds >/dev/null &&
  kubectl create rolebinding -n $NS robot-read-creds --role=read-creds --serviceaccount=$NS:robot >/dev/null &&
  sa_kubectl get secret -n $NS creds -o name | grep -qx secret/creds &&
  ! sa_kubectl get secrets -n $NS >/dev/null 2>&1"
check "auth can-i --list as the ServiceAccount" bash -c "
  kubectl auth can-i --list -n $NS --as=system:serviceaccount:$NS:robot | grep -q '^secrets .*\[creds\] *\[get\]'"

# --- Pod Security admission and the controller-manager
check "label the namespace pod-security enforce=restricted" \
  kubectl label namespace "$NS" pod-security.kubernetes.io/enforce=restricted
check "PodSecurity refuses a Pod that may run as root" \
  fails_with 'violates PodSecurity "restricted' bash -c "kubectl create -n $NS -f - <<EOF
apiVersion: v1
kind: Pod
metadata: {name: rooty}
spec:
  containers:
  - {name: app, image: registry.invalid/app:1}
EOF"
check "a Deployment gets a ReplicaSet and admitted Pods (Pending: no node)" bash -c "kubectl create -n $NS -f - <<EOF >/dev/null &&
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:$restricted_pod_spec
EOF
  $(declare -f eventually); eventually 60 bash -c '[[ \$(kubectl get pods -n $NS -l app=web -o name | wc -l) == 2 ]]' &&
  [[ \$(kubectl get pods -n $NS -l app=web -o jsonpath='{.items[*].status.phase}') == 'Pending Pending' ]]"
check "garbage collection: deleting the Deployment removes its ReplicaSet and Pods" bash -c "
  kubectl delete deployment -n $NS web --cascade=background >/dev/null &&
  $(declare -f eventually); eventually 60 bash -c '[[ -z \$(kubectl get replicasets,pods -n $NS -o name) ]]'"

kubectl delete --ignore-not-found crd/gadgets.smoke.alicloud-rollouts.io >/dev/null 2>&1 || true
check "deleting the namespace completes" bash -c "
  kubectl delete namespace $NS --wait=false >/dev/null &&
  kubectl wait --for=delete namespace/$NS --timeout=90s"

echo "$passed passed, $failed failed"
((failed == 0))
