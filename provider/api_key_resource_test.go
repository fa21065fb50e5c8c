package provider

import (
	"context"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
	"github.com/hashicorp/terraform-plugin-framework-timetypes/timetypes"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
	"github.com/hashicorp/vault/api"
)

var keyShape = regexp.MustCompile(`^` + keyformat.Pattern + `$`)

// capture copies an attribute out of state for later steps.
func capture(address, attribute string, dst *string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		rs, ok := s.RootModule().Resources[address]
		if !ok {
			return fmt.Errorf("%s not in state", address)
		}
		*dst = rs.Primary.Attributes[attribute]
		return nil
	}
}

func TestAccAPIKey_engineRoleKeyVerifyImport(t *testing.T) {
	srv, _ := accServer(t)
	// This test mounts the engine itself, through the provider.
	mount := "ck-tf-" + fmt.Sprint(time.Now().UnixNano()%100000)
	config := providerBlock(srv, mount) + fmt.Sprintf(`
resource "cryptokeys_secrets_engine" "e" {
  path           = %q
  plugin_version = %q
  config = {
    key_prefix   = "ck"
    scopes       = ["read", "trade"]
    environments = ["dev", "prod"]
    max_ttl      = "720h"
  }
}

resource "cryptokeys_role" "prod" {
  mount       = cryptokeys_secrets_engine.e.path
  name        = "prod-trader"
  environment = "prod"
  scopes      = ["read", "trade"]
  ttl         = "24h"
}

resource "cryptokeys_api_key" "k" {
  mount    = cryptokeys_secrets_engine.e.path
  role     = cryptokeys_role.prod.name
  name     = "bot-1"
  scopes   = ["read"]
  metadata = { customer = "acme" }
}

data "cryptokeys_key" "k" {
  mount  = cryptokeys_secrets_engine.e.path
  key_id = cryptokeys_api_key.k.key_id
}

data "cryptokeys_keys" "prod" {
  mount       = cryptokeys_secrets_engine.e.path
  environment = "prod"
  depends_on  = [cryptokeys_api_key.k]
}

data "cryptokeys_role" "prod" {
  mount = cryptokeys_secrets_engine.e.path
  name  = cryptokeys_role.prod.name
}
`, mount, srv.PluginVersion)
	var apiKey, keyID string
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		Steps: []resource.TestStep{
			{
				Config: config,
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("cryptokeys_secrets_engine.e", tfjsonpath.New("plugin_version"), knownvalue.StringExact(srv.PluginVersion)),
					statecheck.ExpectKnownValue("cryptokeys_api_key.k", tfjsonpath.New("api_key"), knownvalue.StringRegexp(keyShape)),
					statecheck.ExpectKnownValue("cryptokeys_api_key.k", tfjsonpath.New("environment"), knownvalue.StringExact("prod")),
					statecheck.ExpectKnownValue("cryptokeys_api_key.k", tfjsonpath.New("key_type"), knownvalue.StringExact("bearer")),
					statecheck.ExpectKnownValue("cryptokeys_api_key.k", tfjsonpath.New("lease_id"), knownvalue.StringRegexp(regexp.MustCompile("^"+mount+"/creds/prod-trader/"))),
					statecheck.ExpectKnownValue("cryptokeys_api_key.k", tfjsonpath.New("ready_for_rotation"), knownvalue.Bool(false)),
					statecheck.ExpectSensitiveValue("cryptokeys_api_key.k", tfjsonpath.New("api_key")),
					statecheck.ExpectSensitiveValue("cryptokeys_api_key.k", tfjsonpath.New("lease_id")),
					statecheck.ExpectKnownValue("data.cryptokeys_key.k", tfjsonpath.New("status"), knownvalue.StringExact("active")),
					statecheck.ExpectKnownValue("data.cryptokeys_key.k", tfjsonpath.New("name"), knownvalue.StringExact("bot-1")),
					statecheck.ExpectKnownValue("data.cryptokeys_keys.prod", tfjsonpath.New("keys"), knownvalue.ListSizeExact(1)),
					statecheck.ExpectKnownValue("data.cryptokeys_role.prod", tfjsonpath.New("ttl"), knownvalue.StringExact("24h")),
				},
				Check: resource.ComposeTestCheckFunc(
					capture("cryptokeys_api_key.k", "api_key", &apiKey),
					capture("cryptokeys_api_key.k", "key_id", &keyID),
					checkVerify(srv.Client, mount, "cryptokeys_api_key.k", "api_key", "VALID", map[string]any{"environment": "prod", "scopes": "read"}),
					checkVerify(srv.Client, mount, "cryptokeys_api_key.k", "api_key", "INSUFFICIENT_SCOPE", map[string]any{"scopes": "trade"}),
					checkVerifyByHeader(srv.Client, mount, "cryptokeys_api_key.k", "api_key", "VALID"),
				),
			},
			{
				ResourceName:      "cryptokeys_role.prod",
				ImportState:       true,
				ImportStateId:     mount + "/roles/prod-trader",
				ImportStateVerify: true,
			},
			{
				ResourceName:      "cryptokeys_secrets_engine.e",
				ImportState:       true,
				ImportStateId:     mount,
				ImportStateVerify: true,
			},
			{
				// Import brings the metadata (name included), never the secret;
				// scopes and metadata come back merged with the role's.
				ResourceName:            "cryptokeys_api_key.k",
				ImportState:             true,
				ImportStateIdFunc:       func(*terraform.State) (string, error) { return mount + "/" + keyID, nil },
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"api_key", "lease_id", "scopes", "metadata"},
			},
		},
	})
	// Destroy disabled the mount, which revokes every key issued there.
	// (TestAccAPIKey_revokedOutsideTerraformIsRecreated checks that
	// destroying a key alone makes verify answer REVOKED.)
	if code, err := verifyCode(srv.Client, mount, apiKey, nil); err == nil && code == "VALID" {
		t.Fatal("key still VALID after terraform destroy")
	}
}

func TestAccAPIKey_rotationWindowAndTriggers(t *testing.T) {
	srv, mount := accServer(t)
	srv.MustCLI(t, "write", mount+"/roles/r", "environment=prod", "ttl=2h", "max_ttl=4h")
	cfgWindow := func(rotateBefore, trigger string) string {
		return providerBlock(srv, mount) + fmt.Sprintf(`
resource "cryptokeys_api_key" "k" {
  role              = "r"
  rotate_before     = %q
  rotation_triggers = { reason = %q }
  lifecycle {
    create_before_destroy = true
  }
}
`, rotateBefore, trigger)
	}
	cfg := func(trigger string) string { return cfgWindow("30m", trigger) }
	t.Cleanup(func() { testClockOffset.Store(0) })
	var first, second, third string
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		Steps: []resource.TestStep{
			{
				Config: cfg("initial"),
				Check:  capture("cryptokeys_api_key.k", "key_id", &first),
			},
			{
				// Outside the window: nothing to do.
				Config:           cfg("initial"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
			},
			{
				// 1h45m later the key is 15 minutes from expiry, inside
				// rotate_before: a refresh says rotation is due...
				PreConfig:          func() { testClockOffset.Store(int64(105 * time.Minute)) },
				RefreshState:       true,
				ExpectNonEmptyPlan: true,
				Check:              resource.TestCheckResourceAttr("cryptokeys_api_key.k", "ready_for_rotation", "true"),
			},
			{
				// A narrower window (15 minutes are left) is an in-place
				// change that takes the flag back; "600s" is "10m".
				Config: cfgWindow("600s", "initial"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("cryptokeys_api_key.k", plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue("cryptokeys_api_key.k", tfjsonpath.New("ready_for_rotation"), knownvalue.Bool(false)),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("cryptokeys_api_key.k", tfjsonpath.New("key_id"), knownvalue.StringFunc(func(v string) error {
						if v != first {
							return fmt.Errorf("key replaced by a window change")
						}
						return nil
					})),
				},
			},
			{
				Config:           cfgWindow("10m", "initial"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
			},
			{
				// ...and the plan replaces the key, new key first.
				Config: cfg("initial"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("cryptokeys_api_key.k", plancheck.ResourceActionCreateBeforeDestroy),
					plancheck.ExpectUnknownValue("cryptokeys_api_key.k", tfjsonpath.New("ready_for_rotation")),
				}},
				Check: resource.ComposeTestCheckFunc(
					capture("cryptokeys_api_key.k", "key_id", &second),
					checkVerify(srv.Client, mount, "cryptokeys_api_key.k", "api_key", "VALID", nil),
					func(*terraform.State) error {
						if second == first {
							return fmt.Errorf("key not replaced")
						}
						if st := keyStatus(srv.Client, mount, first); st != "revoked" {
							return fmt.Errorf("rotated-out key is %s, want revoked", st)
						}
						// The engine issued the successor on the real clock;
						// bring the provider's back so both agree again.
						testClockOffset.Store(0)
						return nil
					},
				),
			},
			{
				// The successor has its full TTL left: no rotation loop.
				Config:           cfg("initial"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
			},
			{
				Config: cfg("incident-42"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("cryptokeys_api_key.k", plancheck.ResourceActionCreateBeforeDestroy),
				}},
				Check: resource.ComposeTestCheckFunc(
					capture("cryptokeys_api_key.k", "key_id", &third),
					func(*terraform.State) error {
						if third == second || keyStatus(srv.Client, mount, second) != "revoked" {
							return fmt.Errorf("rotation_triggers change did not replace the key")
						}
						return nil
					},
				),
			},
		},
	})
}

func TestAccAPIKey_revokedOutsideTerraformIsRecreated(t *testing.T) {
	srv, mount := accServer(t)
	srv.MustCLI(t, "write", mount+"/roles/r", "environment=prod")
	cfg := providerBlock(srv, mount) + `
resource "cryptokeys_api_key" "k" {
  role = "r"
}
`
	var first, second, secondKey string
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		Steps: []resource.TestStep{
			{Config: cfg, Check: capture("cryptokeys_api_key.k", "key_id", &first)},
			{
				PreConfig: func() { srv.MustCLI(t, "delete", mount+"/keys/"+first) },
				Config:    cfg,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("cryptokeys_api_key.k", plancheck.ResourceActionCreate),
				}},
				Check: resource.ComposeTestCheckFunc(
					capture("cryptokeys_api_key.k", "key_id", &second),
					capture("cryptokeys_api_key.k", "api_key", &secondKey),
					checkVerify(srv.Client, mount, "cryptokeys_api_key.k", "api_key", "VALID", nil),
				),
			},
		},
		CheckDestroy: func(*terraform.State) error {
			if st := keyStatus(srv.Client, mount, second); st != "revoked" {
				return fmt.Errorf("after destroy the key is %s, want revoked", st)
			}
			if code, err := verifyCode(srv.Client, mount, secondKey, nil); err != nil || code != "REVOKED" {
				return fmt.Errorf("after destroy verify answers %s (%v), want REVOKED", code, err)
			}
			return nil
		},
	})
}

func TestAccProvider_misconfiguration(t *testing.T) {
	srv, mount := accServer(t)
	key := `
resource "cryptokeys_api_key" "k" {
  role = "r"
}
`
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		Steps: []resource.TestStep{
			{
				Config:      "provider \"cryptokeys\" {\n  address = \"http://127.0.0.1:1\"\n  token = \"x\"\n}\n" + key,
				ExpectError: regexp.MustCompile(`Cannot reach Vault`),
			},
			{
				Config:      fmt.Sprintf("provider \"cryptokeys\" {\n  address = %q\n  token = \"not-a-token\"\n  mount = %q\n}\n", srv.Addr, mount) + key,
				ExpectError: regexp.MustCompile(`Permission denied by Vault`),
			},
			{
				// A mount path with no engine behind it is named as such,
				// not reported as the failure of the first request.
				Config:      providerBlock(srv, "no-engine-here") + key,
				ExpectError: regexp.MustCompile(`No cryptokeys engine at no-engine-here/`),
			},
			{
				// The engine's cross-field rule is checked at plan time.
				Config: providerBlock(srv, mount) + `
resource "cryptokeys_role" "r" {
  name        = "r"
  environment = "prod"
  ttl         = "48h"
  max_ttl     = "24h"
}
`,
				ExpectError: regexp.MustCompile(`ttl \(48h\) must not exceed max_ttl \(24h\)`),
			},
		},
	})
}

// TestAccAPIKey_environmentsInParallel gives dev, staging and prod a role
// and a key each, all created at once on a fresh mount whose config was
// never written (so the first keys it issues race each other), and checks
// every key verifies in its own environment only. It uses count because
// terraform-plugin-testing's state shim refuses for_each instances;
// TestAccExamples_quickstartEnvironmentsFromForEach covers for_each with the
// real CLI.
func TestAccAPIKey_environmentsInParallel(t *testing.T) {
	srv, mount := accServer(t)
	envs := []string{"dev", "staging", "prod"}
	config := providerBlock(srv, mount) + `
locals {
  envs = ["dev", "staging", "prod"]
}

resource "cryptokeys_role" "trader" {
  count       = length(local.envs)
  name        = "${local.envs[count.index]}-trader"
  environment = local.envs[count.index]
  scopes      = ["read", "trade"]
  ttl         = "720h"
  max_ttl     = "2160h"
}

resource "cryptokeys_api_key" "trader" {
  count         = length(local.envs)
  role          = cryptokeys_role.trader[count.index].name
  rotate_before = "168h"
  lifecycle {
    create_before_destroy = true
  }
}

data "cryptokeys_keys" "prod" {
  role       = "prod-trader"
  depends_on = [cryptokeys_api_key.trader]
}
`
	var checks []statecheck.StateCheck
	for i, keyEnv := range envs {
		address := fmt.Sprintf("cryptokeys_api_key.trader[%d]", i)
		checks = append(checks, statecheck.ExpectKnownValue(address, tfjsonpath.New("environment"), knownvalue.StringExact(keyEnv)))
		for _, serviceEnv := range envs {
			want := "ENVIRONMENT_MISMATCH"
			if keyEnv == serviceEnv {
				want = "VALID"
			}
			checks = append(checks, verifyState{c: srv.Client, mount: mount, address: address, want: want, extra: map[string]any{"environment": serviceEnv}})
		}
	}
	checks = append(checks,
		statecheck.ExpectKnownValue("data.cryptokeys_keys.prod", tfjsonpath.New("keys"), knownvalue.ListExact([]knownvalue.Check{
			knownvalue.ObjectPartial(map[string]knownvalue.Check{
				"role": knownvalue.StringExact("prod-trader"), "environment": knownvalue.StringExact("prod"), "status": knownvalue.StringExact("active"),
			}),
		})),
	)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		Steps: []resource.TestStep{
			{Config: config, ConfigStateChecks: checks},
			{
				// Nothing drifts and no rotation is due.
				Config:           config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
			},
		},
	})
}

func TestRotationWindow(t *testing.T) {
	exp := timetypes.NewRFC3339TimeValue(time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC))
	week := timetypes.NewGoDurationValueFromStringMust("168h")
	cases := []struct {
		now  time.Time
		want bool
	}{
		{time.Date(2026, 1, 2, 23, 59, 59, 0, time.UTC), false},
		{time.Date(2026, 1, 3, 0, 0, 0, 0, time.UTC), true},
		{time.Date(2026, 1, 11, 0, 0, 0, 0, time.UTC), true},
	}
	for _, c := range cases {
		if got := inRotationWindow(c.now, exp, week); got != c.want {
			t.Errorf("now %s: %v, want %v", c.now, got, c.want)
		}
	}
	if inRotationWindow(time.Date(2026, 1, 11, 0, 0, 0, 0, time.UTC), exp, timetypes.NewGoDurationNull()) {
		t.Error("no rotate_before must never rotate")
	}
}

// verifyState is a state check that the api_key of a resource instance
// (for_each instances included) verifies with the wanted code.
type verifyState struct {
	c       *api.Client
	mount   string
	address string
	want    string
	extra   map[string]any
}

func (v verifyState) CheckState(_ context.Context, req statecheck.CheckStateRequest, resp *statecheck.CheckStateResponse) {
	for _, r := range req.State.Values.RootModule.Resources {
		if r.Address != v.address {
			continue
		}
		key, _ := r.AttributeValues["api_key"].(string)
		got, err := verifyCode(v.c, v.mount, key, v.extra)
		if err != nil {
			resp.Error = err
		} else if got != v.want {
			kid, _ := r.AttributeValues["key_id"].(string)
			resp.Error = fmt.Errorf("%s (key_id %s, %s) verified with %v: %s, want %s", v.address, kid, keyStatus(v.c, v.mount, kid), v.extra, got, v.want)
		}
		return
	}
	resp.Error = fmt.Errorf("%s not in state", v.address)
}
