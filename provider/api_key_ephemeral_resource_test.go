package provider

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/internal/vaulttest"
	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
	"github.com/hashicorp/terraform-plugin-testing/tfversion"
	"github.com/hashicorp/vault/api"
)

// noKeyMaterial fails when a plan or state holds anything shaped like a key.
func noKeyMaterial(what string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if m := keyformat.Find(b); len(m) > 0 {
		return fmt.Errorf("%s holds key material (key_id %s)", what, m[0].Key.KeyID)
	}
	return nil
}

type planHasNoKeys struct{}

func (planHasNoKeys) CheckPlan(_ context.Context, req plancheck.CheckPlanRequest, resp *plancheck.CheckPlanResponse) {
	resp.Error = noKeyMaterial("the plan", req.Plan)
}

type stateHasNoKeys struct{}

func (stateHasNoKeys) CheckState(_ context.Context, req statecheck.CheckStateRequest, resp *statecheck.CheckStateResponse) {
	resp.Error = noKeyMaterial("the state", req.State)
}

func TestAccAPIKeyEphemeral_neverInPlanOrStateAndRevokedAfter(t *testing.T) {
	srv, mount := accServer(t)
	srv.MustCLI(t, "write", mount+"/roles/eph", "environment=prod", "ttl=1h")
	srv.MustCLI(t, "write", mount+"/roles/holder", "environment=prod")
	config := providerBlock(srv, mount) + `
ephemeral "cryptokeys_api_key" "e" {
  role = "eph"
  name = "deploy-run"
}
`
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		TerraformVersionChecks:   []tfversion.TerraformVersionCheck{tfversion.SkipBelow(tfversion.Version1_10_0)},
		Steps: []resource.TestStep{{
			Config:            config,
			ConfigPlanChecks:  resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{planHasNoKeys{}}},
			ConfigStateChecks: []statecheck.StateCheck{stateHasNoKeys{}},
			Check: func(*terraform.State) error {
				s, err := roleKeyStatuses(srv.Client, mount, "eph")
				if err != nil {
					return err
				}
				if len(s) == 0 {
					return fmt.Errorf("the ephemeral resource issued no key")
				}
				for id, status := range s {
					if status != "revoked" {
						return fmt.Errorf("ephemeral key %s is %s after the run, want revoked", id, status)
					}
				}
				return nil
			},
		}},
	})
}

// TestAccAPIKeyEphemeral_renewedWhileTerraformRuns gives the key a 6 s
// lease and keeps Terraform busy for 9 s: only Renew, called by Terraform
// at the RenewAt the provider asked for, keeps the key VALID to the end.
// The provisioner's command fails the apply unless verify says VALID.
func TestAccAPIKeyEphemeral_renewedWhileTerraformRuns(t *testing.T) {
	srv, mount := accServer(t)
	srv.MustCLI(t, "write", mount+"/roles/short", "environment=prod", "ttl=6s", "max_ttl=1h")
	config := providerBlock(srv, mount) + fmt.Sprintf(`
ephemeral "cryptokeys_api_key" "e" {
  role = "short"
}

resource "terraform_data" "long_step" {
  provisioner "local-exec" {
    command = <<-EOT
      sleep 9
      curl -fsS -H "X-Vault-Token: $VAULT_TOKEN" --data "{\"api_key\":\"$API_KEY\"}" "$VAULT_ADDR/v1/$MOUNT/verify" | grep -q '"code":"VALID"'
    EOT
    environment = {
      API_KEY     = ephemeral.cryptokeys_api_key.e.api_key
      MOUNT       = %q
      VAULT_ADDR  = %q
      VAULT_TOKEN = %q
    }
  }
}
`, mount, srv.Addr, srv.Token)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		TerraformVersionChecks:   []tfversion.TerraformVersionCheck{tfversion.SkipBelow(tfversion.Version1_10_0)},
		Steps: []resource.TestStep{{
			Config: config,
			Check: func(*terraform.State) error {
				s, err := roleKeyStatuses(srv.Client, mount, "short")
				if err != nil {
					return err
				}
				for id, status := range s {
					if status != "revoked" {
						return fmt.Errorf("ephemeral key %s is %s after the run, want revoked", id, status)
					}
				}
				return nil
			},
		}},
	})
}

// roleKeyStatuses maps key_id to status for a role's keys.
func roleKeyStatuses(c *api.Client, mount, role string) (map[string]string, error) {
	s, err := listWithQuery(context.Background(), &client{vault: c}, mount+"/keys", map[string][]string{"role": {role}})
	if err != nil || s == nil {
		return nil, err
	}
	out := map[string]string{}
	info, _ := s.Data["key_info"].(map[string]any)
	for id, v := range info {
		m, _ := v.(map[string]any)
		out[id], _ = m["status"].(string)
	}
	return out, nil
}

func TestAccAPIKey_writeOnlyPublicKey(t *testing.T) {
	srv, mount := accServer(t)
	srv.MustCLI(t, "write", mount+"/roles/ed", "environment=prod", "key_type=ed25519")
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	pubPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	config := providerBlock(srv, mount) + fmt.Sprintf(`
resource "cryptokeys_api_key" "byo" {
  role                  = "ed"
  public_key_wo         = %q
  public_key_wo_version = 1
}
`, pubPEM)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		TerraformVersionChecks:   []tfversion.TerraformVersionCheck{tfversion.SkipBelow(tfversion.Version1_11_0)},
		Steps: []resource.TestStep{{
			Config: config,
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue("cryptokeys_api_key.byo", tfjsonpath.New("public_key_wo"), knownvalue.Null()),
				statecheck.ExpectKnownValue("cryptokeys_api_key.byo", tfjsonpath.New("private_key"), knownvalue.Null()),
				statecheck.ExpectKnownValue("cryptokeys_api_key.byo", tfjsonpath.New("public_key"), knownvalue.StringExact(pubPEM)),
			},
			Check: func(s *terraform.State) error {
				key := s.RootModule().Resources["cryptokeys_api_key.byo"].Primary.Attributes["api_key"]
				ts := strconv.FormatInt(time.Now().UnixMilli(), 10)
				sig := base64.StdEncoding.EncodeToString(ed25519.Sign(priv, []byte(ts+"GET/v1/balance")))
				code, err := verifyCode(srv.Client, mount, key, map[string]any{"timestamp": ts, "method": "GET", "path": "/v1/balance", "signature": sig})
				if err != nil || code != "VALID" {
					return fmt.Errorf("signed with the client's own key: %s (%v)", code, err)
				}
				return nil
			},
		}},
	})
}

func TestRenewAtLeavesHalfTheLease(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if got := renewAt(now, 3600); !got.Equal(now.Add(30 * time.Minute)) {
		t.Fatalf("renewAt = %s", got)
	}
}

// firstApplyConfig declares a role and opens an ephemeral key for it in one
// configuration; roleRef is how the key names the role. The provisioner's
// command fails the apply unless the key verifies VALID, and runs again
// whenever release changes.
func firstApplyConfig(srv *vaulttest.Server, mount, roleRef, release string) string {
	return providerBlock(srv, mount) + fmt.Sprintf(`
resource "cryptokeys_role" "deploy" {
  name        = "deploy"
  environment = "prod"
  scopes      = ["read"]
  ttl         = "15m"
}

ephemeral "cryptokeys_api_key" "smoke" {
  role = %s
}

resource "terraform_data" "smoke" {
  triggers_replace = [%q]
  provisioner "local-exec" {
    command = <<-EOT
      curl -fsS -H "X-Vault-Token: $VAULT_TOKEN" --data "{\"api_key\":\"$API_KEY\",\"environment\":\"prod\"}" "$VAULT_ADDR/v1/$MOUNT/verify" | grep -q '"code":"VALID"'
    EOT
    environment = {
      API_KEY     = ephemeral.cryptokeys_api_key.smoke.api_key
      MOUNT       = %q
      VAULT_ADDR  = %q
      VAULT_TOKEN = %q
    }
  }
}
`, roleRef, release, mount, srv.Addr, srv.Token)
}

// TestAccAPIKeyEphemeral_firstApplyWithRoleByID: the role and an ephemeral
// key for it in one configuration, the key naming the role by its id. The
// first apply creates the role and then opens the key (the id is unknown at
// plan, so Terraform and OpenTofu defer the open to apply); the second
// apply, with the role in state, opens it at plan and again at apply. Each
// apply's smoke test sees a VALID key, and every key is revoked afterwards.
func TestAccAPIKeyEphemeral_firstApplyWithRoleByID(t *testing.T) {
	srv, mount := accServer(t)
	allRevoked := func(min int) func(*terraform.State) error {
		return func(*terraform.State) error {
			s, err := roleKeyStatuses(srv.Client, mount, "deploy")
			if err != nil {
				return err
			}
			if len(s) < min {
				return fmt.Errorf("want at least %d keys issued for the role, got %d", min, len(s))
			}
			for id, status := range s {
				if status != "revoked" {
					return fmt.Errorf("ephemeral key %s is %s after the run, want revoked", id, status)
				}
			}
			return nil
		}
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		TerraformVersionChecks:   []tfversion.TerraformVersionCheck{tfversion.SkipBelow(tfversion.Version1_10_0)},
		Steps: []resource.TestStep{
			{
				Config: firstApplyConfig(srv, mount, "cryptokeys_role.deploy.id", "v1"),
				Check:  allRevoked(1),
			},
			{
				Config: firstApplyConfig(srv, mount, "cryptokeys_role.deploy.id", "v2"),
				Check:  allRevoked(2),
			},
		},
	})
}

// TestAccAPIKeyEphemeral_firstApplyWithRoleByName: by name, the role is
// known at plan. Terraform opens the key then, before the role exists: the
// diagnostic says so and names the id idiom. OpenTofu waits for the role
// (it opens an ephemeral resource only once what it depends on is applied),
// so there the same configuration applies, and its key is VALID and then
// revoked.
func TestAccAPIKeyEphemeral_firstApplyWithRoleByName(t *testing.T) {
	srv, mount := accServer(t)
	step := resource.TestStep{
		Config:      firstApplyConfig(srv, mount, "cryptokeys_role.deploy.name", "v1"),
		ExpectError: regexp.MustCompile(`(?s)Role does not exist.*no role "deploy".*during\s+plan.*role\s+=\s+cryptokeys_role\.<name>\.id`),
	}
	if underOpenTofu(t) {
		step.ExpectError = nil
		step.Check = func(*terraform.State) error {
			s, err := roleKeyStatuses(srv.Client, mount, "deploy")
			if err != nil || len(s) == 0 {
				return fmt.Errorf("OpenTofu issued no key for the role by name (%v)", err)
			}
			for id, status := range s {
				if status != "revoked" {
					return fmt.Errorf("ephemeral key %s is %s after the run, want revoked", id, status)
				}
			}
			return nil
		}
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		TerraformVersionChecks:   []tfversion.TerraformVersionCheck{tfversion.SkipBelow(tfversion.Version1_10_0)},
		Steps:                    []resource.TestStep{step},
	})
}

func TestSplitRoleRef(t *testing.T) {
	for _, c := range []struct {
		ref, mount, mountAttr string
		wantMount, wantRole   string
		wantErr               bool
	}{
		{"prod-trader", "cryptokeys", "", "cryptokeys", "prod-trader", false},
		{"cryptokeys/roles/prod-trader", "other", "", "cryptokeys", "prod-trader", false},
		{"team/ck/roles/r1", "cryptokeys", "team/ck", "team/ck", "r1", false},
		{"team/roles/ck/roles/r1", "cryptokeys", "", "team/roles/ck", "r1", false},
		{"cryptokeys/roles/r1", "other", "other", "", "", true},
	} {
		m, r, err := splitRoleRef(c.ref, c.mount, c.mountAttr)
		if (err != nil) != c.wantErr || m != c.wantMount || r != c.wantRole {
			t.Errorf("splitRoleRef(%q, %q, %q) = %q, %q, %v", c.ref, c.mount, c.mountAttr, m, r, err)
		}
	}
}

func TestRoleRefValidator(t *testing.T) {
	for ref, ok := range map[string]bool{
		"prod-trader":                  true,
		"cryptokeys/roles/prod-trader": true,
		"a/b/roles/r.1":                true,
		"/roles/r":                     false,
		"cryptokeys/roles/":            false,
		"cryptokeys/roles/bad name":    false,
		"bad/name":                     false,
		"":                             false,
	} {
		resp := &validator.StringResponse{}
		roleRefValidator{}.ValidateString(context.Background(), validator.StringRequest{Path: path.Root("role"), ConfigValue: types.StringValue(ref)}, resp)
		if resp.Diagnostics.HasError() == ok {
			t.Errorf("%q: error %v, want ok=%v", ref, resp.Diagnostics, ok)
		}
	}
}

func TestIsMissingRole(t *testing.T) {
	missing := &api.ResponseError{StatusCode: 400, Errors: []string{`role: "deploy" does not exist`}}
	if !isMissingRole(fmt.Errorf("wrapped: %w", missing)) {
		t.Error("the engine's missing-role answer not recognised")
	}
	for _, err := range []error{
		&api.ResponseError{StatusCode: 400, Errors: []string{`ttl: must be positive`}},
		&api.ResponseError{StatusCode: 403, Errors: []string{`permission denied`}},
		fmt.Errorf("dial tcp: refused"),
	} {
		if isMissingRole(err) {
			t.Errorf("%v taken for a missing role", err)
		}
	}
	if d := missingRoleDetail("ck", "deploy", "ck/roles/deploy"); strings.Contains(d, "during plan") {
		t.Errorf("by id the plan-time advice does not apply: %s", d)
	}
}
