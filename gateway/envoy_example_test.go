package gateway

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"

	// Types the example's typed_config fields name.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"

	"github.com/cryptokeys/terraform-provider-cryptokeys/internal/vaulttest"
)

// No envoy binary is available here: the shipped Envoy config is checked
// against Envoy's own protos instead. It must be valid YAML, every field
// must exist with the right type (protojson refuses unknown fields, typed
// configs included), Envoy's validation rules must hold, and the ext_authz
// filter must fail closed, speak V3 over gRPC to the gateway's cluster and
// come before the router.
func TestShippedEnvoyConfig(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(vaulttest.RepoRoot(), "examples", "gateway", "envoy", "envoy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("envoy.yaml is not YAML: %v", err)
	}
	js, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	var bs bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(js, &bs); err != nil {
		t.Fatalf("envoy.yaml is not an Envoy v3 bootstrap: %v", err)
	}
	if err := bs.ValidateAll(); err != nil {
		t.Fatalf("envoy.yaml breaks Envoy's validation rules: %v", err)
	}
	clusters := map[string]bool{}
	for _, c := range bs.GetStaticResources().GetClusters() {
		clusters[c.GetName()] = true
	}
	ls := bs.GetStaticResources().GetListeners()
	if len(ls) != 1 || len(ls[0].GetFilterChains()) != 1 {
		t.Fatalf("want one listener with one filter chain")
	}
	var hcm hcmv3.HttpConnectionManager
	if err := ls[0].GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm); err != nil {
		t.Fatal(err)
	}
	fs := hcm.GetHttpFilters()
	if len(fs) != 2 || fs[1].GetName() != "envoy.filters.http.router" {
		t.Fatalf("http_filters: want ext_authz then the router, got %v", fs)
	}
	var ea extauthzv3.ExtAuthz
	if err := fs[0].GetTypedConfig().UnmarshalTo(&ea); err != nil {
		t.Fatalf("the first filter is not ext_authz: %v", err)
	}
	cl := ea.GetGrpcService().GetEnvoyGrpc().GetClusterName()
	if ea.GetFailureModeAllow() || ea.GetTransportApiVersion().String() != "V3" || !clusters[cl] || ea.GetStatusOnError().GetCode() != 503 {
		t.Errorf("ext_authz: failure_mode_allow=%v api=%v cluster=%q (defined %v) status_on_error=%v", ea.GetFailureModeAllow(), ea.GetTransportApiVersion(), cl, clusters[cl], ea.GetStatusOnError())
	}
}

// The container example cannot be run here (no Docker): it must at least
// be valid YAML whose gateway service builds the shipped Dockerfile.
func TestShippedComposeIsYAML(t *testing.T) {
	dir := filepath.Join(vaulttest.RepoRoot(), "examples", "gateway", "container")
	b, err := os.ReadFile(filepath.Join(dir, "compose.yaml")) // #nosec G304 -- the repository's own example
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Services map[string]struct {
			Build struct{ Context, Dockerfile string }
		}
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("compose.yaml is not YAML: %v", err)
	}
	gw := doc.Services["gateway"].Build
	if _, err := os.Stat(filepath.Join(dir, gw.Context, gw.Dockerfile)); err != nil || gw.Dockerfile == "" {
		t.Fatalf("the gateway service does not build the shipped Dockerfile: %+v (%v)", gw, err)
	}
}
