#!/usr/bin/env bash
# Print a patch for Argo CD's argocd-cm ConfigMap that installs this operator's health
# checks and resource actions (deploy/argocd/resource_customizations) for every kind:
#
#   scripts/argocd-cm.sh > argocd-cm-patch.yaml
#   kubectl -n argocd patch configmap argocd-cm --patch-file argocd-cm-patch.yaml
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/deploy/argocd/resource_customizations

# The file's lines, indented by $1 spaces (a YAML block scalar's body).
indent() {
  local pad
  pad=$(printf '%*s' "$1" '')
  sed -e "s/^/$pad/" -e 's/^ *$//' "$2"
}

echo "data:"
for dir in "$ROOT"/*/*/; do
  dir=${dir%/}
  kind=${dir##*/}
  group=${dir%/*}
  group=${group##*/}
  key="${group}_${kind}"
  echo "  resource.customizations.health.$key: |"
  indent 4 "$dir/health.lua"
  [[ -f $dir/actions/discovery.lua ]] || continue
  echo "  resource.customizations.actions.$key: |"
  echo "    discovery.lua: |"
  indent 6 "$dir/actions/discovery.lua"
  echo "    definitions:"
  for action in "$dir"/actions/*/action.lua; do
    name=${action%/action.lua}
    name=${name##*/}
    echo "      - name: $name"
    echo "        action.lua: |"
    indent 10 "$action"
  done
done
