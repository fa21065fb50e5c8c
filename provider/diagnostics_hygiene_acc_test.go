package provider

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
)

// secretRun is what a leaked secret looks like inside a message: a key's
// secret part is 32 base62 characters, an hmac secret_key 64.
var secretRun = regexp.MustCompile(`[0-9A-Za-z]{32,}`)

// keyMaterialIn says what key material text holds, or "" when none.
func keyMaterialIn(text string) string {
	if m := keyformat.Find([]byte(text)); len(m) > 0 {
		return "a key (key_id " + m[0].Key.KeyID + ")"
	}
	if strings.Contains(text, "PRIVATE KEY") {
		return "a PEM private key"
	}
	if r := secretRun.FindString(text); r != "" {
		return fmt.Sprintf("a %d-character secret-like run", len(r))
	}
	return ""
}

// TestAccAPIKey_diagnosticsHoldNoKeyMaterial issues keys of every type and
// then feeds their api_key, secret_key and private_key into fields where
// they do not belong, so that each later resource fails on apply: in
// provider-side validation, in the engine's validation, and in the creds
// path itself. Terraform shows the diagnostics to whoever runs the
// pipeline and keeps them in CI logs: none may repeat the key material.
func TestAccAPIKey_diagnosticsHoldNoKeyMaterial(t *testing.T) {
	// The check itself finds each kind of material.
	k, err := keyformat.Generate("ck", "prod")
	if err != nil {
		t.Fatal(err)
	}
	for _, planted := range []string{k.Raw(), "x" + k.SecretPart() + "x", "-----BEGIN PRIVATE KEY-----"} {
		if keyMaterialIn("error: "+planted) == "" {
			t.Fatalf("the check misses %.12s...", planted)
		}
	}

	srv, mount := accServer(t)
	for role, typ := range map[string]string{"r": "bearer", "h": "hmac", "e": "ed25519"} {
		srv.MustCLI(t, "write", mount+"/roles/"+role, "environment=prod", "scopes=read", "key_type="+typ)
	}
	config := providerBlock(srv, mount) + `
resource "cryptokeys_api_key" "a" { role = "r" }
resource "cryptokeys_api_key" "h" { role = "h" }
resource "cryptokeys_api_key" "e" { role = "e" }

resource "cryptokeys_api_key" "bad_scope" {
  role   = "r"
  scopes = [cryptokeys_api_key.a.api_key]
}
resource "cryptokeys_api_key" "bad_cidr" {
  role          = "r"
  allowed_cidrs = [cryptokeys_api_key.h.secret_key]
}
resource "cryptokeys_api_key" "bad_ttl" {
  role = "r"
  ttl  = cryptokeys_api_key.a.api_key
}
resource "cryptokeys_api_key" "bad_rotate_before" {
  role          = "r"
  rotate_before = cryptokeys_api_key.h.secret_key
}
resource "cryptokeys_api_key" "bad_public_key" {
  role                  = "e"
  public_key_wo         = cryptokeys_api_key.e.private_key
  public_key_wo_version = 1
}
resource "cryptokeys_api_key" "bad_role" {
  role = cryptokeys_api_key.a.api_key
}
`
	var seen error
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		Steps:                    []resource.TestStep{{Config: config}},
		// The apply must fail; ErrorCheck sees Terraform's whole output.
		ErrorCheck: func(err error) error {
			seen = err
			text := err.Error()
			if what := keyMaterialIn(text); what != "" {
				return fmt.Errorf("the diagnostics hold %s:\n%s", what, secretRun.ReplaceAllString(text, "<SECRET>"))
			}
			for _, r := range []string{"bad_scope", "bad_cidr", "bad_ttl", "bad_rotate_before", "bad_public_key", "bad_role"} {
				if !strings.Contains(text, "cryptokeys_api_key."+r) {
					return fmt.Errorf("no diagnostic for cryptokeys_api_key.%s:\n%s", r, text)
				}
			}
			t.Logf("the diagnostics (%d bytes) hold no key material", len(text))
			return nil
		},
	})
	if seen == nil {
		t.Fatal("the apply succeeded: keys in the wrong fields were accepted")
	}
	// The material was there to leak: the good keys were issued.
	s, err := srv.Client.Logical().List(mount + "/keys")
	if err != nil || s == nil {
		t.Fatalf("list keys: %v", err)
	}
	if ids, _ := s.Data["keys"].([]any); len(ids) < 3 {
		t.Fatal(errors.New("fewer than 3 keys were issued before the failures"))
	}
}
