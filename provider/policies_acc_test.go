package provider

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cryptokeys/terraform-provider-cryptokeys/internal/vaulttest"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfversion"
	"github.com/hashicorp/vault/api"
)

var policyMountRE = regexp.MustCompile(`\bcryptokeys\b`)

// shippedPolicyToken loads examples/policies/<name>.hcl into Vault as
// shipped, its paths moved from the cryptokeys mount to mount, and returns
// a client holding a token with only that policy.
func shippedPolicyToken(t *testing.T, srv *vaulttest.Server, name, mount string) *api.Client {
	t.Helper()
	text, err := os.ReadFile(filepath.Join(vaulttest.RepoRoot(), "examples", "policies", name+".hcl")) // #nosec G304 -- a policy file of this repository, named by the test
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	for _, line := range regexp.MustCompile(`(?m)^.*$`).FindAll(text, -1) {
		if regexp.MustCompile(`^\s*path "`).Match(line) {
			line = policyMountRE.ReplaceAll(line, []byte(mount))
		}
		out = append(append(out, line...), '\n')
	}
	policy := name + "-" + mount
	if err := srv.Client.Sys().PutPolicy(policy, string(out)); err != nil {
		t.Fatal(err)
	}
	tok, err := srv.Client.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{policy}, NoDefaultPolicy: true})
	if err != nil {
		t.Fatal(err)
	}
	c, err := srv.Client.Clone()
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(tok.Auth.ClientToken)
	return c
}

func tokenProviderBlock(srv *vaulttest.Server, c *api.Client, mount string) string {
	return fmt.Sprintf(`
provider "cryptokeys" {
  address = %q
  token   = %q
  mount   = %q
}
`, srv.Addr, c.Token(), mount)
}

func wantForbidden(t *testing.T, what string, err error) {
	t.Helper()
	var re *api.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusForbidden {
		t.Errorf("%s: want 403 from Vault, got %v", what, err)
	}
}

// TestAccPolicies_platformAdminAsShipped drives Terraform with a token
// holding only the shipped platform-admin policy: it mounts a new engine,
// writes its config (a create on a fresh mount), its mount tune settings and
// roles, changes them, and unmounts on destroy.
func TestAccPolicies_platformAdminAsShipped(t *testing.T) {
	skipUnlessAcc(t)
	srv := vaulttest.Shared(t)
	mount := "ck-pol-" + strings.TrimPrefix(srv.Mount(t), "ck-")
	t.Cleanup(func() { _ = srv.Client.Sys().Unmount(mount) })
	admin := shippedPolicyToken(t, srv, "platform-admin", mount)
	config := func(maxLease, maxTTL string) string {
		return tokenProviderBlock(srv, admin, mount) + fmt.Sprintf(`
resource "cryptokeys_secrets_engine" "e" {
  path           = %q
  plugin_version = %q
  max_lease_ttl  = %q
  config = {
    environments = ["prod", "staging"]
  }
}

resource "cryptokeys_role" "prod" {
  mount       = cryptokeys_secrets_engine.e.path
  name        = "prod-trader"
  environment = "prod"
  max_ttl     = %q
}
`, mount, srv.PluginVersion, maxLease, maxTTL)
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		Steps: []resource.TestStep{
			{Config: config("720h", "24h")},
			{Config: config("48h", "36h")},
		},
	})
}

type foreignLease struct{ mount, leaseID, apiKey string }

// TestAccPolicies_pipelineLeasesScopedToItsMountAndRoles drives Terraform
// with a token holding only the shipped prod-pipeline policy: it issues,
// renews (ephemeral) and revokes (destroy, ephemeral close) its keys through
// the provider. Its lease grants are scoped: the same token cannot renew or
// revoke a lease of a staging role on its mount, or of a prod role on
// another mount, by lease in the URL, in the body, or by prefix.
func TestAccPolicies_pipelineLeasesScopedToItsMountAndRoles(t *testing.T) {
	srv, mount := accServer(t)
	other := srv.Mount(t)
	pipeline := shippedPolicyToken(t, srv, "prod-pipeline", mount)
	srv.MustCLI(t, "write", mount+"/roles/prod-trader", "environment=prod", "ttl=4s", "max_ttl=1h")
	srv.MustCLI(t, "write", mount+"/roles/staging-trader", "environment=staging")
	srv.MustCLI(t, "write", other+"/roles/prod-trader", "environment=prod")

	var foreign []foreignLease
	for _, p := range []string{mount + "/creds/staging-trader", other + "/creds/prod-trader"} {
		s, err := srv.Client.Logical().Write(p, nil)
		if err != nil {
			t.Fatal(err)
		}
		foreign = append(foreign, foreignLease{strings.SplitN(p, "/", 2)[0], s.LeaseID, apiKeyOf(s.Data)})
	}
	for _, f := range foreign {
		_, err := pipeline.Logical().Write("sys/leases/revoke/"+f.leaseID, nil)
		wantForbidden(t, "revoking "+f.leaseID, err)
		_, err = pipeline.Logical().Write("sys/leases/renew/"+f.leaseID, map[string]any{"increment": 60})
		wantForbidden(t, "renewing "+f.leaseID, err)
		wantForbidden(t, "revoking "+f.leaseID+" (lease in the body)", pipeline.Sys().Revoke(f.leaseID))
		_, err = pipeline.Sys().Renew(f.leaseID, 60)
		wantForbidden(t, "renewing "+f.leaseID+" (lease in the body)", err)
	}
	wantForbidden(t, "revoking by prefix", pipeline.Sys().RevokePrefix(mount+"/creds/staging-trader"))
	if err := checkForeignValid(srv, foreign); err != nil {
		t.Fatal(err)
	}

	config := tokenProviderBlock(srv, pipeline, mount) + fmt.Sprintf(`
resource "cryptokeys_api_key" "k" {
  role = "prod-trader"
  ttl  = "1h"
}

ephemeral "cryptokeys_api_key" "e" {
  role = "prod-trader"
}

# Runs past the ephemeral key's 4 s lease: only a renewal through the
# pipeline's scoped grant keeps it VALID.
resource "terraform_data" "long_step" {
  provisioner "local-exec" {
    command = <<-EOT
      sleep 6
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
		CheckDestroy: func(*terraform.State) error {
			// Destroy (resource) and close (ephemeral, at the end of every
			// run) revoked each key through the pipeline's own grants.
			s, err := roleKeyStatuses(srv.Client, mount, "prod-trader")
			if err != nil {
				return err
			}
			if len(s) < 2 {
				return fmt.Errorf("want the resource's and the ephemeral keys, got %v", s)
			}
			// The resource's key (1h) must be revoked. An ephemeral key
			// (4 s lease) that a slow plan let run out before its close is
			// expired, and its close's revoke still went through the
			// pipeline's grant (a 403 would have failed the run); no key may
			// be left live.
			revoked := 0
			for id, st := range s {
				switch st {
				case "revoked":
					revoked++
				case "expired":
				default:
					return fmt.Errorf("key %s of the pipeline is %s after destroy, want revoked (or expired, for an ephemeral key)", id, st)
				}
			}
			if revoked == 0 {
				return fmt.Errorf("no key of the pipeline was revoked by destroy or close: %v", s)
			}
			return checkForeignValid(srv, foreign)
		},
		Steps: []resource.TestStep{{Config: config}},
	})
}

func checkForeignValid(srv *vaulttest.Server, foreign []foreignLease) error {
	for _, f := range foreign {
		if code, err := verifyCode(srv.Client, f.mount, f.apiKey, nil); err != nil || code != "VALID" {
			return fmt.Errorf("the key of lease %s: verify answered %s (%v), want VALID", f.leaseID, code, err)
		}
	}
	return nil
}

func apiKeyOf(data map[string]any) string {
	k, _ := data["api_key"].(string)
	return k
}
