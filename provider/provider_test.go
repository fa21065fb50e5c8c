package provider

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/internal/vaulttest"
	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/ephemeral"
	"github.com/hashicorp/terraform-plugin-framework/function"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	fwresource "github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/vault/api"
)

// testClockOffset moves the provider's clock in acceptance tests, so a
// rotation window can be entered without waiting for it.
var testClockOffset atomic.Int64

func testNow() time.Time { return time.Now().Add(time.Duration(testClockOffset.Load())) }

var testProviders = map[string]func() (tfprotov6.ProviderServer, error){
	"cryptokeys": NewProtocol6(NewWithClock("test", testNow)()),
}

// The package's acceptance tests share one real Vault server (started on
// first use, stopped after the last test); each test works in mounts of its
// own, so none sees another's roles or keys.
func TestMain(m *testing.M) { vaulttest.Main(m) }

// accServer returns the real Vault with the real plugin and a fresh mount.
// Acceptance tests need TF_ACC=1 (make test sets it).
func accServer(t *testing.T) (*vaulttest.Server, string) {
	t.Helper()
	skipUnlessAcc(t)
	srv := vaulttest.Shared(t)
	return srv, srv.Mount(t)
}

func skipUnlessAcc(t *testing.T) {
	t.Helper()
	if os.Getenv("TF_ACC") == "" {
		t.Skip("acceptance test: set TF_ACC=1 (make test does)")
	}
}

func providerBlock(srv *vaulttest.Server, mount string) string {
	return fmt.Sprintf(`
provider "cryptokeys" {
  address = %q
  token   = %q
  mount   = %q
}
`, srv.Addr, srv.Token, mount)
}

// verifyCode asks the engine about a key, as an API gateway would.
func verifyCode(c *api.Client, mount, apiKey string, extra map[string]any) (string, error) {
	data := map[string]any{"api_key": apiKey}
	for k, v := range extra {
		data[k] = v
	}
	s, err := c.Logical().Write(mount+"/verify", data)
	if err != nil {
		return "", err
	}
	code, _ := s.Data["code"].(string)
	return code, nil
}

// verifyCodeByRead is verifyCode through the engine's verify read, the key
// in the header: it answers only on a mount that passes the header on.
func verifyCodeByRead(c *api.Client, mount, apiKey string) (string, error) {
	s, err := c.Logical().ReadWithRequest(context.Background(), api.NewLogicalReadRequest(mount+"/verify", nil,
		http.Header{wire.VerifyHeader: {apiKey}}))
	if err != nil {
		return "", fmt.Errorf("verify read: %w", err)
	}
	code, _ := s.Data["code"].(string)
	return code, nil
}

// checkVerify is a test check that the key in a resource attribute
// verifies with the wanted code.
func checkVerify(c *api.Client, mount, address, attribute, want string, extra map[string]any) resource.TestCheckFunc {
	return checkKeyCode(address, attribute, want, func(key string) (string, error) { return verifyCode(c, mount, key, extra) })
}

// checkVerifyByHeader is checkVerify through the engine's verify read.
func checkVerifyByHeader(c *api.Client, mount, address, attribute, want string) resource.TestCheckFunc {
	return checkKeyCode(address, attribute, want, func(key string) (string, error) { return verifyCodeByRead(c, mount, key) })
}

func checkKeyCode(address, attribute, want string, ask func(key string) (string, error)) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		rs, ok := s.RootModule().Resources[address]
		if !ok {
			return fmt.Errorf("%s not in state", address)
		}
		got, err := ask(rs.Primary.Attributes[attribute])
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("%s: verify answered %s, want %s", address, got, want)
		}
		return nil
	}
}

func keyStatus(c *api.Client, mount, keyID string) string {
	s, err := c.Logical().Read(mount + "/keys/" + keyID)
	if err != nil || s == nil {
		return "gone"
	}
	st, _ := s.Data["status"].(string)
	return st
}

// TestProvider_schemaValid builds the server, which validates every schema,
// and checks that each resource, data source, ephemeral resource and
// function the provider declares is served, named as the provider names it
// (the list comes from the provider, not from this test).
func TestProvider_schemaValid(t *testing.T) {
	ctx := t.Context()
	p := New("test")().(*cryptokeysProvider)
	srv, err := providerserver.NewProtocol6WithError(p)()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.GetProviderSchema(ctx, &tfprotov6.GetProviderSchemaRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range resp.Diagnostics {
		t.Errorf("schema diagnostic: %s: %s", d.Summary, d.Detail)
	}
	var meta provider.MetadataResponse
	p.Metadata(ctx, provider.MetadataRequest{}, &meta)
	served := func(kind, name string, schemas map[string]*tfprotov6.Schema) {
		t.Helper()
		if !strings.HasPrefix(name, meta.TypeName+"_") {
			t.Errorf("%s %q is not named %s_<thing>", kind, name, meta.TypeName)
		}
		if _, ok := schemas[name]; !ok {
			t.Errorf("%s %s is declared but not served", kind, name)
		}
	}
	check := func(kind string, want int, schemas map[string]*tfprotov6.Schema) {
		t.Helper()
		if want == 0 || len(schemas) != want {
			t.Errorf("%ss: the provider declares %d, the server serves %d", kind, want, len(schemas))
		}
	}
	rs := p.Resources(ctx)
	for _, f := range rs {
		var m fwresource.MetadataResponse
		f().Metadata(ctx, fwresource.MetadataRequest{ProviderTypeName: meta.TypeName}, &m)
		served("resource", m.TypeName, resp.ResourceSchemas)
	}
	check("resource", len(rs), resp.ResourceSchemas)
	ds := p.DataSources(ctx)
	for _, f := range ds {
		var m datasource.MetadataResponse
		f().Metadata(ctx, datasource.MetadataRequest{ProviderTypeName: meta.TypeName}, &m)
		served("data source", m.TypeName, resp.DataSourceSchemas)
	}
	check("data source", len(ds), resp.DataSourceSchemas)
	es := p.EphemeralResources(ctx)
	for _, f := range es {
		var m ephemeral.MetadataResponse
		f().Metadata(ctx, ephemeral.MetadataRequest{ProviderTypeName: meta.TypeName}, &m)
		served("ephemeral resource", m.TypeName, resp.EphemeralResourceSchemas)
	}
	check("ephemeral resource", len(es), resp.EphemeralResourceSchemas)
	fs := p.Functions(ctx)
	for _, f := range fs {
		var m function.MetadataResponse
		f().Metadata(ctx, function.MetadataRequest{}, &m)
		if _, ok := resp.Functions[m.Name]; !ok {
			t.Errorf("function %s is declared but not served", m.Name)
		}
	}
	if len(fs) == 0 || len(resp.Functions) != len(fs) {
		t.Errorf("functions: the provider declares %d, the server serves %d", len(fs), len(resp.Functions))
	}
}

// A lease ID lets whoever may write sys/leases/revoke/<id> end the key:
// it is sensitive wherever the provider returns it (finding 12).
func TestLeaseIDIsSensitive(t *testing.T) {
	srv, err := providerserver.NewProtocol6WithError(New("test")())()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.GetProviderSchema(t.Context(), &tfprotov6.GetProviderSchemaRequest{})
	if err != nil {
		t.Fatal(err)
	}
	schemas := map[string]*tfprotov6.Schema{
		"resource cryptokeys_api_key":  resp.ResourceSchemas["cryptokeys_api_key"],
		"ephemeral cryptokeys_api_key": resp.EphemeralResourceSchemas["cryptokeys_api_key"],
	}
	for name, s := range resp.DataSourceSchemas {
		schemas["data source "+name] = s
	}
	seen := 0
	for name, s := range schemas {
		for _, a := range s.Block.Attributes {
			if a.Name == "lease_id" {
				seen++
				if !a.Sensitive {
					t.Errorf("%s: lease_id is not sensitive", name)
				}
			}
		}
	}
	if seen < 2 {
		t.Errorf("lease_id found in %d schemas, want the resource's and the ephemeral's", seen)
	}
}

func TestNewVaultClient_diagnostics(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	t.Setenv("VAULT_ADDR", "")
	t.Setenv("VAULT_TOKEN", "")
	_, summary, detail := newVaultClient(providerModel{}, env(map[string]string{"HOME": t.TempDir()}))
	if summary != "Missing Vault address" || !strings.Contains(detail, "VAULT_ADDR") {
		t.Fatalf("no address: %q %q", summary, detail)
	}
	_, summary, detail = newVaultClient(providerModel{}, env(map[string]string{"VAULT_ADDR": "http://127.0.0.1:1", "HOME": t.TempDir()}))
	if summary != "Missing Vault token" || !strings.Contains(detail, "vault login") {
		t.Fatalf("no token: %q %q", summary, detail)
	}
	home := t.TempDir()
	if err := os.WriteFile(home+"/.vault-token", []byte("s.fromhelper\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, summary, _ := newVaultClient(providerModel{}, env(map[string]string{"VAULT_ADDR": "http://127.0.0.1:1", "HOME": home, "VAULT_NAMESPACE": "team-a"}))
	if summary != "" || c.Token() != "s.fromhelper" || c.Namespace() != "team-a" {
		t.Fatalf("token helper / namespace fallback: %q token=%q ns=%q", summary, c.Token(), c.Namespace())
	}
}

// TestAccProvider_missingSettings needs no Vault: a provider block without
// an address or a token must say which is missing and how to set it, even
// when nothing is in the environment or the token helper file.
func TestAccProvider_missingSettings(t *testing.T) {
	skipUnlessAcc(t)
	t.Setenv("VAULT_ADDR", "")
	t.Setenv("VAULT_TOKEN", "")
	t.Setenv("HOME", t.TempDir()) // no ~/.vault-token
	key := `
resource "cryptokeys_api_key" "k" {
  role = "r"
}
`
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		Steps: []resource.TestStep{
			{
				Config:      "provider \"cryptokeys\" {\n  token = \"x\"\n}\n" + key,
				ExpectError: regexp.MustCompile(`(?s)Missing Vault address.*VAULT_ADDR`),
			},
			{
				Config:      "provider \"cryptokeys\" {\n  address = \"http://127.0.0.1:1\"\n}\n" + key,
				ExpectError: regexp.MustCompile(`(?s)Missing Vault token.*VAULT_TOKEN.*vault login`),
			},
			{
				// validate and plan-time checks need no Vault at all.
				Config:             "provider \"cryptokeys\" {\n  address = \"http://127.0.0.1:1\"\n  token = \"x\"\n}\n" + key,
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
		},
	})
}
