// Package provider is the cryptokeys Terraform provider: it declares the
// cryptokeys secrets engine's mount, roles and keys as code.
package provider

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/ephemeral"
	"github.com/hashicorp/terraform-plugin-framework/function"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/vault/api"
)

// DefaultMount is where the engine is mounted unless configured otherwise.
const DefaultMount = "cryptokeys"

var (
	_ provider.Provider                       = (*cryptokeysProvider)(nil)
	_ provider.ProviderWithEphemeralResources = (*cryptokeysProvider)(nil)
	_ provider.ProviderWithFunctions          = (*cryptokeysProvider)(nil)
)

type cryptokeysProvider struct {
	version string
	// now is the provider's clock. Rotation decisions read it, so tests
	// can move time instead of waiting for it.
	now func() time.Time
}

// New returns the provider factory providerserver serves.
func New(version string) func() provider.Provider {
	return NewWithClock(version, time.Now)
}

// NewWithClock is New with an injected clock, for tests.
func NewWithClock(version string, now func() time.Time) func() provider.Provider {
	return func() provider.Provider { return &cryptokeysProvider{version: version, now: now} }
}

type providerModel struct {
	Address       types.String `tfsdk:"address"`
	Token         types.String `tfsdk:"token"`
	Namespace     types.String `tfsdk:"namespace"`
	Mount         types.String `tfsdk:"mount"`
	CACertFile    types.String `tfsdk:"ca_cert_file"`
	SkipTLSVerify types.Bool   `tfsdk:"skip_tls_verify"`
}

func (p *cryptokeysProvider) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = "cryptokeys"
	resp.Version = p.version
}

func (p *cryptokeysProvider) Schema(_ context.Context, _ provider.SchemaRequest, resp *provider.SchemaResponse) {
	resp.Schema = schema.Schema{
		Description: "Manages the cryptokeys Vault secrets engine: its mount, roles and API keys. Connection settings fall back to the Vault CLI's environment (VAULT_ADDR, VAULT_TOKEN, VAULT_NAMESPACE, VAULT_CACERT, VAULT_SKIP_VERIFY) and the file ~/.vault-token, which the provider reads directly (it does not run a token_helper configured for the vault CLI). A token sent over plain http:// to a non-loopback address draws a warning.",
		Attributes: map[string]schema.Attribute{
			"address": schema.StringAttribute{
				Optional:    true,
				Description: "Vault address, e.g. https://vault.example.com:8200. Default: VAULT_ADDR. An http:// address other than loopback (127.0.0.0/8, ::1, localhost) draws a warning: the token and the keys Vault returns would cross the network in clear.",
			},
			"token": schema.StringAttribute{
				Optional:    true,
				Sensitive:   true,
				Description: "Vault token. Default: VAULT_TOKEN, then the file ~/.vault-token (read directly; a token_helper configured in ~/.vault or VAULT_CONFIG_PATH is not run).",
			},
			"namespace": schema.StringAttribute{
				Optional:    true,
				Description: "Vault Enterprise namespace. Default: VAULT_NAMESPACE.",
			},
			"mount": schema.StringAttribute{
				Optional:    true,
				Description: "Default path of the cryptokeys engine for resources that set none. Default: cryptokeys.",
			},
			"ca_cert_file": schema.StringAttribute{
				Optional:    true,
				Description: "PEM file of the CA that signed Vault's TLS certificate. Default: VAULT_CACERT.",
			},
			"skip_tls_verify": schema.BoolAttribute{
				Optional:    true,
				Description: "Do not verify Vault's TLS certificate (never in production). Default: VAULT_SKIP_VERIFY.",
			},
		},
	}
}

// client is what resources get from Configure.
type client struct {
	vault *api.Client
	mount string
	now   func() time.Time

	// checked holds the mounts whose info path answered as a compatible
	// engine, so each mount costs one extra request per provider run.
	mu      sync.Mutex
	checked map[string]bool
}

func (p *cryptokeysProvider) Configure(ctx context.Context, req provider.ConfigureRequest, resp *provider.ConfigureResponse) {
	var m providerModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	// Unknown values (from resources not yet created) cannot configure a
	// client; Terraform calls Configure again once they are known.
	if m.Address.IsUnknown() || m.Token.IsUnknown() || m.Namespace.IsUnknown() || m.CACertFile.IsUnknown() || m.SkipTLSVerify.IsUnknown() {
		return
	}
	c, summary, detail := newVaultClient(m, os.Getenv)
	if summary != "" {
		resp.Diagnostics.AddError(summary, detail)
		return
	}
	if w := plainHTTPWarning(c.Address()); w != "" {
		resp.Diagnostics.AddAttributeWarning(path.Root("address"), "Vault token sent over plain HTTP", w)
	}
	mount := DefaultMount
	if v := m.Mount.ValueString(); v != "" {
		mount = strings.Trim(v, "/")
	}
	cl := &client{vault: c, mount: mount, now: p.now}
	// The server that asked (quietKeys, which answers below the
	// framework) keeps it too; one provider value may serve several.
	if sink, ok := ctx.Value(configuredSink{}).(*atomic.Pointer[client]); ok {
		sink.Store(cl)
	}
	resp.ResourceData = cl
	resp.DataSourceData = cl
	resp.EphemeralResourceData = cl
}

// newVaultClient builds a Vault API client from the provider block and the
// Vault CLI's environment. It never contacts Vault: `terraform validate`
// must work offline. It returns a diagnostic summary and detail on error.
func newVaultClient(m providerModel, getenv func(string) string) (*api.Client, string, string) {
	cfg := api.DefaultConfig() // reads VAULT_ADDR, VAULT_CACERT, VAULT_SKIP_VERIFY, ...
	if cfg.Error != nil {
		return nil, "Invalid Vault environment", cfg.Error.Error()
	}
	if v := m.Address.ValueString(); v != "" {
		cfg.Address = v
	}
	if getenv("VAULT_ADDR") == "" && m.Address.ValueString() == "" {
		return nil, "Missing Vault address",
			"Set `address` in the cryptokeys provider block or export VAULT_ADDR (for example VAULT_ADDR=https://vault.example.com:8200)."
	}
	tls := &api.TLSConfig{}
	setTLS := false
	if v := m.CACertFile.ValueString(); v != "" {
		tls.CACert, setTLS = v, true
	}
	if !m.SkipTLSVerify.IsNull() {
		tls.Insecure, setTLS = m.SkipTLSVerify.ValueBool(), true
	} else if v := getenv("VAULT_SKIP_VERIFY"); v != "" {
		if b, err := strconv.ParseBool(v); err == nil {
			tls.Insecure = b
		}
	}
	if setTLS {
		if tls.CACert == "" {
			tls.CACert = getenv("VAULT_CACERT")
		}
		if err := cfg.ConfigureTLS(tls); err != nil {
			return nil, "Invalid TLS settings for Vault", fmt.Sprintf("ca_cert_file / skip_tls_verify: %v", err)
		}
	}
	// ConfigureTLS only ever turns verification off, so an explicit
	// skip_tls_verify = false must undo a VAULT_SKIP_VERIFY that
	// DefaultConfig already applied.
	if !m.SkipTLSVerify.IsNull() {
		if t, ok := cfg.HttpClient.Transport.(*http.Transport); ok && t.TLSClientConfig != nil {
			t.TLSClientConfig.InsecureSkipVerify = m.SkipTLSVerify.ValueBool() // #nosec G402 -- only when the user sets skip_tls_verify = true; documented as never for production
		}
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, "Cannot create a Vault client", err.Error()
	}
	token := m.Token.ValueString()
	if token == "" {
		token = getenv("VAULT_TOKEN")
	}
	if token == "" {
		token = tokenHelperFile(getenv)
	}
	if token == "" {
		return nil, "Missing Vault token",
			"Set `token` in the cryptokeys provider block, export VAULT_TOKEN, or run `vault login` (which writes ~/.vault-token)."
	}
	c.SetToken(token)
	ns := m.Namespace.ValueString()
	if ns == "" {
		ns = getenv("VAULT_NAMESPACE")
	}
	if ns != "" {
		c.SetNamespace(ns)
	}
	return c, "", ""
}

// plainHTTPWarning explains why an http:// Vault address that is not
// loopback is a risk, or returns "" for any other address.
func plainHTTPWarning(address string) string {
	u, err := url.Parse(address)
	if err != nil || !strings.EqualFold(u.Scheme, "http") {
		return ""
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return ""
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.Unmap().IsLoopback() {
		return ""
	}
	return fmt.Sprintf("The provider sends its Vault token, and Vault returns API keys and their secrets, over plain HTTP to %s: anyone on the network path can read them. Use an https:// address (and ca_cert_file / VAULT_CACERT for a private CA). Plain HTTP is only safe to a loopback address, such as a local Vault agent or dev server.", u.Host)
}

// tokenHelperFile reads the token the Vault CLI's default token helper
// keeps in ~/.vault-token. It reads the file itself and never runs an
// external token_helper named in the vault CLI's config.
func tokenHelperFile(getenv func(string) string) string {
	home := getenv("HOME")
	if home == "" {
		return ""
	}
	b, err := os.ReadFile(filepath.Join(home, ".vault-token")) // #nosec G304 -- the Vault CLI token helper's file, in the user's own HOME
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func (p *cryptokeysProvider) Resources(context.Context) []func() resource.Resource {
	return []func() resource.Resource{newSecretsEngineResource, newRoleResource, newAPIKeyResource}
}

func (p *cryptokeysProvider) DataSources(context.Context) []func() datasource.DataSource {
	return []func() datasource.DataSource{newRoleDataSource, newKeyDataSource, newKeysDataSource}
}

func (p *cryptokeysProvider) EphemeralResources(context.Context) []func() ephemeral.EphemeralResource {
	return []func() ephemeral.EphemeralResource{newAPIKeyEphemeralResource}
}

func (p *cryptokeysProvider) Functions(context.Context) []func() function.Function {
	return []func() function.Function{newParseKeyFunction}
}
