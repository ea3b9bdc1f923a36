// gopher-lua, the Lua VM Argo CD embeds, for the tests of our Argo CD health checks and
// actions: scripts/go-tool.sh builds this command with the Go module proxy.
module alicloud-rollouts.local/hack/argocd-lua

go 1.26.0

require (
	github.com/yuin/gopher-lua v1.1.2
	sigs.k8s.io/yaml v1.4.0
)
