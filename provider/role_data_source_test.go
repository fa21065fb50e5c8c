package provider

import (
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
)

// The role data source reads every setting of a role made outside
// Terraform, with the engine's defaults shown as values, not nulls.
func TestAccRoleDataSource_readsARoleMadeElsewhere(t *testing.T) {
	srv, mount := accServer(t)
	srv.MustCLI(t, "write", mount+"/roles/full", "environment=prod", "scopes=read,trade", "key_type=hmac",
		"ttl=24h", "max_ttl=720h", "allowed_cidrs=10.0.0.0/8", "rate_limit=5", "rate_burst=10", "max_active_keys=3",
		"recv_window=2000", "labels=team=desk", "description=trading desk", "on_anomaly=flag", "anomaly_rate=50", "flag_new_source=true")
	srv.MustCLI(t, "write", mount+"/roles/bare", "environment=dev")
	data := func(name string) string {
		return providerBlock(srv, mount) + `
data "cryptokeys_role" "r" {
  name = "` + name + `"
}
`
	}
	at := func(attr string) tfjsonpath.Path { return tfjsonpath.New(attr) }
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		Steps: []resource.TestStep{
			{
				Config: data("full"),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("data.cryptokeys_role.r", at("mount"), knownvalue.StringExact(mount)),
					statecheck.ExpectKnownValue("data.cryptokeys_role.r", at("environment"), knownvalue.StringExact("prod")),
					statecheck.ExpectKnownValue("data.cryptokeys_role.r", at("scopes"), knownvalue.SetExact([]knownvalue.Check{knownvalue.StringExact("read"), knownvalue.StringExact("trade")})),
					statecheck.ExpectKnownValue("data.cryptokeys_role.r", at("key_type"), knownvalue.StringExact("hmac")),
					statecheck.ExpectKnownValue("data.cryptokeys_role.r", at("ttl"), knownvalue.StringExact("24h")),
					statecheck.ExpectKnownValue("data.cryptokeys_role.r", at("max_ttl"), knownvalue.StringExact("720h")),
					statecheck.ExpectKnownValue("data.cryptokeys_role.r", at("allowed_cidrs"), knownvalue.SetExact([]knownvalue.Check{knownvalue.StringExact("10.0.0.0/8")})),
					statecheck.ExpectKnownValue("data.cryptokeys_role.r", at("rate_limit"), knownvalue.Float64Exact(5)),
					statecheck.ExpectKnownValue("data.cryptokeys_role.r", at("rate_burst"), knownvalue.Int64Exact(10)),
					statecheck.ExpectKnownValue("data.cryptokeys_role.r", at("max_active_keys"), knownvalue.Int64Exact(3)),
					statecheck.ExpectKnownValue("data.cryptokeys_role.r", at("recv_window"), knownvalue.Int64Exact(2000)),
					statecheck.ExpectKnownValue("data.cryptokeys_role.r", at("metadata"), knownvalue.MapExact(map[string]knownvalue.Check{"team": knownvalue.StringExact("desk")})),
					statecheck.ExpectKnownValue("data.cryptokeys_role.r", at("description"), knownvalue.StringExact("trading desk")),
					statecheck.ExpectKnownValue("data.cryptokeys_role.r", at("on_anomaly"), knownvalue.StringExact("flag")),
					statecheck.ExpectKnownValue("data.cryptokeys_role.r", at("anomaly_rate"), knownvalue.Float64Exact(50)),
					statecheck.ExpectKnownValue("data.cryptokeys_role.r", at("flag_new_source"), knownvalue.Bool(true)),
				},
			},
			{
				// Unset settings read as the engine's defaults, never null.
				Config: data("bare"),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("data.cryptokeys_role.r", at("ttl"), knownvalue.StringExact("0s")),
					statecheck.ExpectKnownValue("data.cryptokeys_role.r", at("scopes"), knownvalue.SetSizeExact(0)),
					statecheck.ExpectKnownValue("data.cryptokeys_role.r", at("metadata"), knownvalue.MapSizeExact(0)),
					statecheck.ExpectKnownValue("data.cryptokeys_role.r", at("rate_limit"), knownvalue.Float64Exact(0)),
					statecheck.ExpectKnownValue("data.cryptokeys_role.r", at("description"), knownvalue.StringExact("")),
					statecheck.ExpectKnownValue("data.cryptokeys_role.r", at("key_type"), knownvalue.StringExact("bearer")),
					statecheck.ExpectKnownValue("data.cryptokeys_role.r", at("recv_window"), knownvalue.Int64Exact(5000)),
				},
			},
			{
				Config:      data("missing"),
				ExpectError: regexp.MustCompile(`Role not found`),
			},
		},
	})
}
