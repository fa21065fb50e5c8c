package provider

import (
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/internal/vaulttest"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
)

// TestAccProvider_tls runs the provider against a real Vault that speaks
// only HTTPS, with a certificate from a CA of its own. The provider trusts
// it through ca_cert_file or VAULT_CACERT, refuses it without (or with
// another CA, or with skip_tls_verify = false over VAULT_SKIP_VERIFY), and
// accepts it unverified only when skip_tls_verify or VAULT_SKIP_VERIFY says
// so. A refused connection issues no key.
func TestAccProvider_tls(t *testing.T) {
	skipUnlessAcc(t)
	srv := vaulttest.StartTLS(t)
	mount := srv.Mount(t)
	if _, err := srv.Client.Logical().Write(mount+"/roles/tls", map[string]any{"environment": "prod"}); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"VAULT_ADDR", "VAULT_TOKEN", "VAULT_CACERT", "VAULT_CAPATH", "VAULT_SKIP_VERIFY", "VAULT_TLS_SERVER_NAME"} {
		t.Setenv(v, "")
	}
	config := func(settings string) string {
		return fmt.Sprintf(`
provider "cryptokeys" {
  address = %q
  token   = %q
  mount   = %q
%s
}

resource "cryptokeys_api_key" "k" {
  role = "tls"
}
`, srv.Addr, srv.Token, mount, settings)
	}
	untrusted := regexp.MustCompile(`(?s)Vault's TLS certificate is not trusted.*ca_cert_file`)
	refused := func(name, settings string, env ...string) {
		t.Run(name, func(t *testing.T) {
			for i := 0; i < len(env); i += 2 {
				t.Setenv(env[i], env[i+1])
			}
			resource.Test(t, resource.TestCase{
				ProtoV6ProviderFactories: testProviders,
				Steps:                    []resource.TestStep{{Config: config(settings), ExpectError: untrusted}},
			})
		})
	}
	refused("no_ca", "")
	refused("other_ca", fmt.Sprintf("  ca_cert_file = %q", vaulttest.OtherCAFile(t)))
	refused("skip_false", "  skip_tls_verify = false")
	refused("block_false_over_env_true", "  skip_tls_verify = false", "VAULT_SKIP_VERIFY", "true")
	refused("env_other_ca", "", "VAULT_CACERT", vaulttest.OtherCAFile(t))
	if s, err := srv.Client.Logical().List(mount + "/keys"); err != nil || s != nil {
		t.Fatalf("keys were issued over refused connections (list: %v, %v)", s, err)
	}

	trusted := func(name, settings string, env ...string) {
		t.Run(name, func(t *testing.T) {
			for i := 0; i < len(env); i += 2 {
				t.Setenv(env[i], env[i+1])
			}
			var key string
			resource.Test(t, resource.TestCase{
				ProtoV6ProviderFactories: testProviders,
				Steps: []resource.TestStep{{
					Config: config(settings),
					Check: resource.ComposeTestCheckFunc(
						checkVerify(srv.Client, mount, "cryptokeys_api_key.k", "api_key", "VALID", nil),
						func(s *terraform.State) error {
							key = s.RootModule().Resources["cryptokeys_api_key.k"].Primary.Attributes["api_key"]
							return nil
						},
					),
				}},
			})
			// Destroy revoked the key, over the same connection.
			deadline := time.Now().Add(20 * time.Second)
			for {
				code, err := verifyCode(srv.Client, mount, key, nil)
				if err != nil {
					t.Fatal(err)
				}
				if code == "REVOKED" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("after destroy the key verifies %s, want REVOKED", code)
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
	trusted("ca_cert_file", fmt.Sprintf("  ca_cert_file = %q", srv.CAFile))
	trusted("env_cacert", "", "VAULT_CACERT", srv.CAFile)
	trusted("skip_tls_verify", "  skip_tls_verify = true")
	trusted("env_skip_verify", "", "VAULT_SKIP_VERIFY", "true")
}
