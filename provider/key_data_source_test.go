package provider

import (
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
)

// The key data source reads a key's metadata (never its secret), and what
// happened to it outside Terraform.
func TestAccKeyDataSource_metadataAndRevocation(t *testing.T) {
	srv, mount := accServer(t)
	srv.MustCLI(t, "write", mount+"/roles/r", "environment=dev", "scopes=read,trade", "labels=team=desk")
	s, err := srv.Client.Logical().Write(mount+"/creds/r", map[string]any{"name": "bot-1", "scopes": []string{"read"}, "labels": map[string]string{"customer": "acme"}})
	if err != nil {
		t.Fatal(err)
	}
	keyID := s.Data["key_id"].(string)
	config := func(id string) string {
		return providerBlock(srv, mount) + `
data "cryptokeys_key" "k" {
  key_id = "` + id + `"
}
`
	}
	at := func(attr string) tfjsonpath.Path { return tfjsonpath.New(attr) }
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		Steps: []resource.TestStep{
			{
				Config: config(keyID),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("data.cryptokeys_key.k", at("mount"), knownvalue.StringExact(mount)),
					statecheck.ExpectKnownValue("data.cryptokeys_key.k", at("name"), knownvalue.StringExact("bot-1")),
					statecheck.ExpectKnownValue("data.cryptokeys_key.k", at("role"), knownvalue.StringExact("r")),
					statecheck.ExpectKnownValue("data.cryptokeys_key.k", at("environment"), knownvalue.StringExact("dev")),
					statecheck.ExpectKnownValue("data.cryptokeys_key.k", at("scopes"), knownvalue.SetExact([]knownvalue.Check{knownvalue.StringExact("read")})),
					statecheck.ExpectKnownValue("data.cryptokeys_key.k", at("metadata"), knownvalue.MapExact(map[string]knownvalue.Check{
						"team": knownvalue.StringExact("desk"), "customer": knownvalue.StringExact("acme"),
					})),
					statecheck.ExpectKnownValue("data.cryptokeys_key.k", at("status"), knownvalue.StringExact("active")),
					statecheck.ExpectKnownValue("data.cryptokeys_key.k", at("use_count"), knownvalue.Int64Exact(0)),
					statecheck.ExpectKnownValue("data.cryptokeys_key.k", at("revoked_at"), knownvalue.StringExact("")),
				},
			},
			{
				PreConfig: func() { srv.MustCLI(t, "delete", mount+"/keys/"+keyID, "reason=leaked in a ticket") },
				Config:    config(keyID),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("data.cryptokeys_key.k", at("status"), knownvalue.StringExact("revoked")),
					statecheck.ExpectKnownValue("data.cryptokeys_key.k", at("revoke_reason"), knownvalue.StringExact("leaked in a ticket")),
					statecheck.ExpectKnownValue("data.cryptokeys_key.k", at("revoked_at"), knownvalue.StringRegexp(regexp.MustCompile(`^\d{4}-\d\d-\d\dT`))),
				},
			},
			{
				Config:      config("AAAAAAAAAAAA"),
				ExpectError: regexp.MustCompile(`Key not found`),
			},
		},
	})
}
