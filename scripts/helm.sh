#!/usr/bin/env bash
# Helm for the chart's tests, built from its Go module (hack/helm/go.mod pins the version),
# cached under ~/.cache/alicloud-rollouts/helm. Kept for the README's commands:
#
#   scripts/helm.sh build   fetch and build if needed (warms the cache)
#   scripts/helm.sh path    build if needed, then print the helm binary's path on stdout
exec bash "$(dirname "${BASH_SOURCE[0]}")/go-tool.sh" helm "$@"
