package provider

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
	"github.com/hashicorp/vault/api"
)

// diagRecorder keeps the warnings the provider hands Terraform from
// refresh, plan and apply; terraform-plugin-testing checks errors only.
type diagRecorder struct {
	mu       sync.Mutex
	warnings []*tfprotov6.Diagnostic
	applied  []*tfprotov6.Diagnostic // those of ApplyResourceChange
}

func (r *diagRecorder) add(ds []*tfprotov6.Diagnostic, apply bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range ds {
		if d != nil && d.Severity == tfprotov6.DiagnosticSeverityWarning {
			r.warnings = append(r.warnings, d)
			if apply {
				r.applied = append(r.applied, d)
			}
		}
	}
}

// noneApplied fails on a warning from an apply.
func (r *diagRecorder) noneApplied() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.applied) > 0 {
		return fmt.Errorf("unexpected warning from apply: %s: %s", r.applied[0].Summary, r.applied[0].Detail)
	}
	return nil
}

func (r *diagRecorder) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.warnings, r.applied = nil, nil
}

// warned finds a warning on attribute whose detail holds every one of
// words; it returns an error describing what was seen otherwise.
func (r *diagRecorder) warned(attribute string, words ...string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var seen []string
	for _, d := range r.warnings {
		attr := ""
		if d.Attribute != nil && len(d.Attribute.Steps()) > 0 {
			attr = fmt.Sprint(d.Attribute.Steps()[0])
		}
		seen = append(seen, fmt.Sprintf("[%s] %s: %s", attr, d.Summary, d.Detail))
		if !strings.Contains(attr, attribute) {
			continue
		}
		ok := true
		for _, w := range words {
			ok = ok && strings.Contains(d.Detail, w)
		}
		if ok {
			return nil
		}
	}
	return fmt.Errorf("no warning on %s naming %q; warnings seen: %q", attribute, words, seen)
}

func (r *diagRecorder) none() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.warnings) > 0 {
		return fmt.Errorf("unexpected warnings: %s: %s", r.warnings[0].Summary, r.warnings[0].Detail)
	}
	return nil
}

type recordingServer struct {
	tfprotov6.ProviderServer
	rec *diagRecorder
}

func (s recordingServer) ReadResource(ctx context.Context, req *tfprotov6.ReadResourceRequest) (*tfprotov6.ReadResourceResponse, error) {
	resp, err := s.ProviderServer.ReadResource(ctx, req)
	if resp != nil {
		s.rec.add(resp.Diagnostics, false)
	}
	return resp, err
}

func (s recordingServer) PlanResourceChange(ctx context.Context, req *tfprotov6.PlanResourceChangeRequest) (*tfprotov6.PlanResourceChangeResponse, error) {
	resp, err := s.ProviderServer.PlanResourceChange(ctx, req)
	if resp != nil {
		s.rec.add(resp.Diagnostics, false)
	}
	return resp, err
}

func (s recordingServer) ApplyResourceChange(ctx context.Context, req *tfprotov6.ApplyResourceChangeRequest) (*tfprotov6.ApplyResourceChangeResponse, error) {
	resp, err := s.ProviderServer.ApplyResourceChange(ctx, req)
	if resp != nil {
		s.rec.add(resp.Diagnostics, true)
	}
	return resp, err
}

// providers is testProviders with every warning recorded in r.
func (r *diagRecorder) providers() map[string]func() (tfprotov6.ProviderServer, error) {
	inner := NewProtocol6(NewWithClock("test", testNow)())
	return map[string]func() (tfprotov6.ProviderServer, error){
		"cryptokeys": func() (tfprotov6.ProviderServer, error) {
			s, err := inner()
			if err != nil {
				return nil, err
			}
			return recordingServer{s, r}, nil
		},
	}
}

// tuneOf reads a mount's tune settings as Vault has them.
func tuneOf(c *api.Client, mount string) (*api.MountConfigOutput, error) {
	return c.Sys().MountConfig(mount)
}

func checkAuditKeys(c *api.Client, mount string, request, response []string) resource.TestCheckFunc {
	return func(*terraform.State) error {
		t, err := tuneOf(c, mount)
		if err != nil {
			return err
		}
		if got := sortedCopy(t.AuditNonHMACRequestKeys); fmt.Sprint(got) != fmt.Sprint(request) {
			return fmt.Errorf("mount %s audit_non_hmac_request_keys = %v, want %v", mount, got, request)
		}
		if got := sortedCopy(t.AuditNonHMACResponseKeys); fmt.Sprint(got) != fmt.Sprint(response) {
			return fmt.Errorf("mount %s audit_non_hmac_response_keys = %v, want %v", mount, got, response)
		}
		return nil
	}
}

func stringSet(ss ...string) knownvalue.Check {
	checks := make([]knownvalue.Check, len(ss))
	for i, s := range ss {
		checks[i] = knownvalue.StringExact(s)
	}
	return knownvalue.SetExact(checks)
}

// TestAccSecretsEngine_auditKeysDriftWarnAndRefuse (issue 15 finding 13):
// the resource sets the mount's audit_non_hmac_* lists; an operator's
// `vault secrets tune -audit-non-hmac-request-keys=api_key` shows in the
// next plan as drift back to the configured list, with a loud warning
// naming the field; a configuration asking for api_key (or another field
// carrying key material) is refused at plan, before anything reaches Vault.
func TestAccSecretsEngine_auditKeysDriftWarnAndRefuse(t *testing.T) {
	srv, _ := accServer(t)
	mount := fmt.Sprintf("ck-audit-%d", time.Now().UnixNano()%1000000)
	t.Cleanup(func() { _ = srv.Client.Sys().Unmount(mount) })
	engine := func(request, response string) string {
		return providerBlock(srv, mount) + fmt.Sprintf(`
resource "cryptokeys_secrets_engine" "e" {
  path           = %q
  plugin_version = %q
  %s
  %s
}
`, mount, srv.PluginVersion, request, response)
	}
	safe := engine(`audit_non_hmac_request_keys = ["key_id", "role"]`, "")
	rec := &diagRecorder{}
	addr := "cryptokeys_secrets_engine.e"
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: rec.providers(),
		Steps: []resource.TestStep{
			{
				Config: safe,
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("audit_non_hmac_request_keys"), stringSet("key_id", "role")),
					// Unset: the provider's default, key_id only.
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("audit_non_hmac_response_keys"), stringSet("key_id")),
				},
				Check: resource.ComposeTestCheckFunc(
					checkAuditKeys(srv.Client, mount, []string{"key_id", "role"}, []string{"key_id"}),
					func(*terraform.State) error { return rec.none() },
				),
			},
			{
				// An operator un-HMACs api_key and secret_key by hand. The
				// plan's refresh warns, naming the field, and the plan shows
				// the drift back to the safe lists; the apply restores them.
				PreConfig: func() {
					rec.reset()
					srv.MustCLI(t, "secrets", "tune", "-audit-non-hmac-request-keys=api_key", mount)
					srv.MustCLI(t, "secrets", "tune", "-audit-non-hmac-response-keys=secret_key", mount)
				},
				Config: safe,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(addr, plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue(addr, tfjsonpath.New("audit_non_hmac_request_keys"), stringSet("key_id", "role")),
					plancheck.ExpectKnownValue(addr, tfjsonpath.New("audit_non_hmac_response_keys"), stringSet("key_id")),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("audit_non_hmac_request_keys"), stringSet("key_id", "role")),
				},
				Check: resource.ComposeTestCheckFunc(
					func(*terraform.State) error {
						return rec.warned("audit_non_hmac_request_keys", `"api_key"`, mount, "in clear", "leaked")
					},
					func(*terraform.State) error {
						return rec.warned("audit_non_hmac_response_keys", `"secret_key"`, mount, "in clear")
					},
					checkAuditKeys(srv.Client, mount, []string{"key_id", "role"}, []string{"key_id"}),
				),
			},
			{
				// Refused at plan: nothing is applied.
				Config:      engine(`audit_non_hmac_request_keys = ["key_id", "api_key"]`, ""),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`(?s)Audit setting would log key material in clear.*must not list "api_key"`),
			},
			{
				Config:      engine("", `audit_non_hmac_response_keys = ["Private_Key"]`),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`(?s)Audit setting would log key material in clear.*must not list "private_key"`),
			},
			{
				Config:      engine(`audit_non_hmac_request_keys = ["text"]`, `audit_non_hmac_response_keys = ["secret_key"]`),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`(?s)must not list "(text|secret_key)".*must not list "(text|secret_key)"`),
			},
			{
				// The refused plans changed nothing in Vault.
				Config:   safe,
				PlanOnly: true,
				Check:    checkAuditKeys(srv.Client, mount, []string{"key_id", "role"}, []string{"key_id"}),
			},
		},
	})
}

func checkLeaseTTLs(c *api.Client, mount string, def, max int) resource.TestCheckFunc {
	return func(*terraform.State) error {
		t, err := tuneOf(c, mount)
		if err != nil {
			return err
		}
		if t.DefaultLeaseTTL != def || t.MaxLeaseTTL != max {
			return fmt.Errorf("mount %s lease TTLs %ds / %ds, want %ds / %ds", mount, t.DefaultLeaseTTL, t.MaxLeaseTTL, def, max)
		}
		return nil
	}
}

// TestAccSecretsEngine_leaseTTLsAndRoleAboveMountMax (issue 21 item 4): the
// resource sets the mount's default_lease_ttl and max_lease_ttl, compared
// semantically ("2880m" is "48h"); a role whose max_ttl exceeds the
// mount's max_lease_ttl, which Vault silently caps it at, gets a warning
// naming the real limit (768h, Vault's default, for the documented 2160h).
func TestAccSecretsEngine_leaseTTLsAndRoleAboveMountMax(t *testing.T) {
	srv, _ := accServer(t)
	mount := fmt.Sprintf("ck-ttl-%d", time.Now().UnixNano()%1000000)
	t.Cleanup(func() { _ = srv.Client.Sys().Unmount(mount) })
	config := func(tune, roleMax string) string {
		return providerBlock(srv, mount) + fmt.Sprintf(`
resource "cryptokeys_secrets_engine" "e" {
  path           = %q
  plugin_version = %q
  %s
}

resource "cryptokeys_role" "r" {
  mount       = cryptokeys_secrets_engine.e.path
  name        = "prod-trader"
  environment = "prod"
  ttl         = "24h"
  max_ttl     = %q
}
`, mount, srv.PluginVersion, tune, roleMax)
	}
	rec := &diagRecorder{}
	addr := "cryptokeys_secrets_engine.e"
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: rec.providers(),
		Steps: []resource.TestStep{
			{
				// The README's role on a mount with Vault's defaults.
				Config: config("", "2160h"),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("max_lease_ttl"), knownvalue.StringExact("768h")),
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("default_lease_ttl"), knownvalue.StringExact("768h")),
				},
				Check: func(*terraform.State) error { return rec.warned("max_ttl", "2160h", mount, "768h", "max_lease_ttl") },
			},
			{
				PreConfig: rec.reset,
				Config:    config(`default_lease_ttl = "1h"`+"\n"+`max_lease_ttl = "48h"`, "72h"),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("default_lease_ttl"), knownvalue.StringExact("1h")),
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("max_lease_ttl"), knownvalue.StringExact("48h")),
				},
				Check: resource.ComposeTestCheckFunc(
					checkLeaseTTLs(srv.Client, mount, 3600, 48*3600),
					func(*terraform.State) error { return rec.warned("max_ttl", "72h", "48h") },
				),
			},
			{
				// The same lengths written differently plan nothing.
				PreConfig: rec.reset,
				Config:    config(`default_lease_ttl = "60m"`+"\n"+`max_lease_ttl = "2880m"`, "72h"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectEmptyPlan(),
				}},
				// A plan-time warning, the mount being readable now.
				Check: func(*terraform.State) error { return rec.warned("max_ttl", "72h", "48h") },
			},
			{
				// Tuned by hand: the refresh reads the new limit, the plan
				// shows the drift back, the apply restores it.
				PreConfig: func() {
					rec.reset()
					srv.MustCLI(t, "secrets", "tune", "-max-lease-ttl=10h", mount)
				},
				Config: config(`default_lease_ttl = "1h"`+"\n"+`max_lease_ttl = "48h"`, "72h"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(addr, plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue(addr, tfjsonpath.New("max_lease_ttl"), knownvalue.StringExact("48h")),
				}},
				Check: checkLeaseTTLs(srv.Client, mount, 3600, 48*3600),
			},
			{
				PreConfig: rec.reset,
				Config:    config(`default_lease_ttl = "1h"`+"\n"+`max_lease_ttl = "96h"`, "72h"),
				Check:     checkLeaseTTLs(srv.Client, mount, 3600, 96*3600),
			},
			{
				// The documented 2160h role fits once the mount allows it
				// (above the server's own 768h default: a mount's limit
				// replaces the server's). The plan, which sees the mount's
				// current 96h, warns that it is the current limit; the
				// apply, after the mount was raised, does not.
				PreConfig: rec.reset,
				Config:    config(`default_lease_ttl = "720h"`+"\n"+`max_lease_ttl = "2160h"`, "2160h"),
				Check: resource.ComposeTestCheckFunc(
					checkLeaseTTLs(srv.Client, mount, 720*3600, 2160*3600),
					func(*terraform.State) error { return rec.warned("max_ttl", "currently", "96h", "in the same apply") },
					func(*terraform.State) error { return rec.noneApplied() },
				),
			},
			{
				// Within the limit: no warning, at plan or apply.
				PreConfig: rec.reset,
				Config:    config(`default_lease_ttl = "1h"`+"\n"+`max_lease_ttl = "96h"`, "72h"),
				Check: resource.ComposeTestCheckFunc(
					checkLeaseTTLs(srv.Client, mount, 3600, 96*3600),
					func(*terraform.State) error { return rec.none() },
				),
			},
		},
	})
}

// The engine's config: written on create, changed in place, a list set to
// [] cleared in Vault, and a change made outside Terraform planned back.
func TestAccSecretsEngine_config(t *testing.T) {
	srv, _ := accServer(t)
	mount := fmt.Sprintf("ck-cfg-%d", time.Now().UnixNano()%1000000)
	t.Cleanup(func() { _ = srv.Client.Sys().Unmount(mount) })
	config := func(body string) string {
		return providerBlock(srv, mount) + fmt.Sprintf(`
resource "cryptokeys_secrets_engine" "e" {
  path           = %q
  plugin_version = %q
  config = {
%s
  }
}
`, mount, srv.PluginVersion, body)
	}
	addr := "cryptokeys_secrets_engine.e"
	cfg := func(attr string) tfjsonpath.Path { return tfjsonpath.New("config").AtMapKey(attr) }
	readConfig := func(field string) any {
		s, err := srv.Client.Logical().Read(mount + "/config")
		if err != nil || s == nil {
			t.Fatalf("reading %s/config: %v", mount, err)
		}
		return s.Data[field]
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		Steps: []resource.TestStep{
			{
				Config: config(`    key_prefix = "acme"
    scopes     = ["read", "trade"]
    max_ttl    = "720h"`),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(addr, cfg("key_prefix"), knownvalue.StringExact("acme")),
					statecheck.ExpectKnownValue(addr, cfg("scopes"), knownvalue.SetExact([]knownvalue.Check{knownvalue.StringExact("read"), knownvalue.StringExact("trade")})),
					statecheck.ExpectKnownValue(addr, cfg("max_ttl"), knownvalue.StringExact("720h")),
					statecheck.ExpectKnownValue(addr, cfg("environments"), knownvalue.SetSizeExact(0)),
				},
			},
			{
				// "60m" for "1h" is no change; scopes = [] clears the catalog.
				Config: config(`    key_prefix = "acme"
    scopes     = []
    max_ttl    = "43200m"`),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction(addr, plancheck.ResourceActionUpdate)},
				},
				Check: func(*terraform.State) error {
					if got := readConfig("scopes"); fmt.Sprint(got) != "[]" {
						return fmt.Errorf("scopes in Vault after scopes = []: %v", got)
					}
					return nil
				},
			},
			{
				PreConfig: func() { srv.MustCLI(t, "write", mount+"/config", "key_prefix=evil") },
				Config: config(`    key_prefix = "acme"
    scopes     = []
    max_ttl    = "43200m"`),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction(addr, plancheck.ResourceActionUpdate)},
				},
				Check: func(*terraform.State) error {
					if got := readConfig("key_prefix"); got != "acme" {
						return fmt.Errorf("key_prefix in Vault after the apply: %v, want acme back", got)
					}
					return nil
				},
			},
		},
	})
}
