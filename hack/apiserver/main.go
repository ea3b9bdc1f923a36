// Command alicloud-rollouts-apiserver runs k8s.io/apiextensions-apiserver as a standalone
// Kubernetes API server for local tests: CustomResourceDefinitions and the custom
// resources they define, stored in etcd. Built by scripts/local-apiserver.sh in GOPATH
// mode from Debian's Go source packages.
//
// Compared with the upstream apiextensions-apiserver command it publishes OpenAPI v2 as
// well as v3 (so CRD schemas appear there), does not wait for a core Service informer
// that can never sync (so /readyz turns ready), and completes discovery:
//   - the root discovery documents are switched on (upstream leaves them to
//     kube-aggregator, which is absent here);
//   - unaggregated GET /apis also lists the groups of established CRDs, so clients that
//     do not use aggregated discovery find them;
//   - /api and /api/v1 exist: aggregated discovery of /api lists no core group (what
//     kubectl and client-go want), unaggregated /api lists the core version "v1" with
//     no resources (kube-rs refuses a core group without versions).
package main

import (
	"context"
	"encoding/json"
	goflag "flag"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"k8s.io/apiextensions-apiserver/pkg/apihelpers"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/apiserver"
	crdlisters "k8s.io/apiextensions-apiserver/pkg/client/listers/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/cmd/server/options"
	generatedopenapi "k8s.io/apiextensions-apiserver/pkg/generated/openapi"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/apiserver/pkg/endpoints/discovery"
	openapinamer "k8s.io/apiserver/pkg/endpoints/openapi"
	genericapiserver "k8s.io/apiserver/pkg/server"
	openapiutil "k8s.io/apiserver/pkg/util/openapi"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	kubescheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/klog/v2"
)

// discoveryState is filled in once the server exists; the handler chain is built before.
type discoveryState struct {
	builtin discovery.GroupLister
	crds    crdlisters.CustomResourceDefinitionLister
	// serves the aggregated form of /api: an empty list, as there is no core group.
	legacyAggregated http.Handler
}

func main() {
	if err := run(); err != nil {
		klog.ErrorS(err, "apiserver failed")
		klog.Flush()
		os.Exit(1)
	}
}

func run() error {
	opts := options.NewCustomResourceDefinitionsServerOptions(os.Stdout, os.Stderr)
	flags := pflag.NewFlagSet(os.Args[0], pflag.ExitOnError)
	opts.AddFlags(flags)
	klogFlags := goflag.NewFlagSet("klog", goflag.ExitOnError)
	klog.InitFlags(klogFlags)
	flags.AddGoFlagSet(klogFlags)
	if err := flags.Parse(os.Args[1:]); err != nil {
		return err
	}
	if err := opts.ServerRunOptions.ComponentGlobalsRegistry.Set(); err != nil {
		return err
	}
	if err := opts.Complete(); err != nil {
		return err
	}
	if err := opts.Validate(); err != nil {
		return err
	}
	cfg, err := opts.Config()
	if err != nil {
		return err
	}

	// Publish OpenAPI v2 too. The CRD OpenAPI controllers (v2 and v3) only run when it is
	// on, and kubectl's client-side validation and `kubectl explain` need their output.
	cfg.GenericConfig.OpenAPIConfig = genericapiserver.DefaultOpenAPIConfig(
		openapiutil.GetOpenAPIDefinitionsWithoutDisabledFeatures(generatedopenapi.GetOpenAPIDefinitions),
		openapinamer.NewDefinitionNamer(apiserver.Scheme, kubescheme.Scheme))
	cfg.GenericConfig.OpenAPIConfig.Info.Title = "alicloud-rollouts local API server"

	// The informer factory Config() made already holds a Service informer (for webhook
	// conversion services), which can never sync without a core group and so keeps
	// /readyz failing. Start from an empty factory: no informer here needs the core group.
	kubeClient, err := kubernetes.NewForConfig(cfg.GenericConfig.LoopbackClientConfig)
	if err != nil {
		return err
	}
	cfg.GenericConfig.SharedInformerFactory = informers.NewSharedInformerFactory(kubeClient, 10*time.Minute)

	state := &discoveryState{}
	buildChain := cfg.GenericConfig.BuildHandlerChainFunc
	cfg.GenericConfig.BuildHandlerChainFunc = func(h http.Handler, c *genericapiserver.Config) http.Handler {
		return buildChain(state.wrap(h), c)
	}

	completed := cfg.Complete()
	completed.GenericConfig.EnableDiscovery = true
	server, err := completed.New(genericapiserver.NewEmptyDelegate())
	if err != nil {
		return err
	}
	state.builtin = server.GenericAPIServer.DiscoveryGroupManager
	state.crds = server.Informers.Apiextensions().V1().CustomResourceDefinitions().Lister()
	if m := server.GenericAPIServer.AggregatedLegacyDiscoveryGroupManager; m != nil {
		state.legacyAggregated = m
	}

	ctx := genericapiserver.SetupSignalContext()
	return server.GenericAPIServer.PrepareRun().RunWithContext(ctx)
}

// wrap answers the discovery paths the apiextensions server leaves out and passes
// everything else on. It runs behind authentication and authorization.
func (s *discoveryState) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			next.ServeHTTP(w, r)
			return
		}
		aggregated := strings.Contains(r.Header.Get("Accept"), "as=APIGroupDiscoveryList")
		switch strings.TrimSuffix(r.URL.Path, "/") {
		case "/api":
			// Aggregated clients (kubectl, client-go) get no core group at all; an
			// empty core/v1 resource list would be an error to them.
			if aggregated && s.legacyAggregated != nil {
				s.legacyAggregated.ServeHTTP(w, r)
				return
			}
			// Unaggregated clients (kube-rs) require at least one core version.
			writeJSON(w, &metav1.APIVersions{
				TypeMeta: metav1.TypeMeta{Kind: "APIVersions"},
				Versions: []string{"v1"},
				ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{
					{ClientCIDR: "0.0.0.0/0", ServerAddress: r.Host},
				},
			})
		case "/api/v1":
			writeJSON(w, &metav1.APIResourceList{
				TypeMeta:     metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"},
				GroupVersion: "v1",
				APIResources: []metav1.APIResource{},
			})
		case "/apis":
			// The aggregated form already carries the CRD groups.
			if s.crds == nil || aggregated {
				next.ServeHTTP(w, r)
				return
			}
			groups, err := s.groups(r.Context(), r)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			writeJSON(w, &metav1.APIGroupList{
				TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"},
				Groups:   groups,
			})
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// groups lists the built-in groups followed by those of established CRDs, each with its
// served versions newest first (Kubernetes version order), the first being preferred.
func (s *discoveryState) groups(ctx context.Context, r *http.Request) ([]metav1.APIGroup, error) {
	out, err := s.builtin.Groups(ctx, r)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, g := range out {
		seen[g.Name] = true
	}
	crds, err := s.crds.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	versions := map[string]map[string]bool{}
	for _, crd := range crds {
		if seen[crd.Spec.Group] || !apihelpers.IsCRDConditionTrue(crd, apiextensionsv1.Established) {
			continue
		}
		for _, v := range crd.Spec.Versions {
			if !v.Served {
				continue
			}
			if versions[crd.Spec.Group] == nil {
				versions[crd.Spec.Group] = map[string]bool{}
			}
			versions[crd.Spec.Group][v.Name] = true
		}
	}
	names := make([]string, 0, len(versions))
	for name := range versions {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		vs := make([]string, 0, len(versions[name]))
		for v := range versions[name] {
			vs = append(vs, v)
		}
		sort.Slice(vs, func(i, j int) bool { return version.CompareKubeAwareVersionStrings(vs[i], vs[j]) > 0 })
		group := metav1.APIGroup{Name: name}
		for _, v := range vs {
			group.Versions = append(group.Versions, metav1.GroupVersionForDiscovery{
				GroupVersion: name + "/" + v,
				Version:      v,
			})
		}
		group.PreferredVersion = group.Versions[0]
		out = append(out, group)
	}
	return out, nil
}

func writeJSON(w http.ResponseWriter, v interface{}) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = fmt.Fprintf(w, "%s\n", body)
}
