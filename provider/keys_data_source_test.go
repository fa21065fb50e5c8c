package provider

import (
	"slices"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
)

// The keys data source lists keys, ordered by key_id, filtered by role,
// environment and status.
func TestAccKeysDataSource_filters(t *testing.T) {
	srv, mount := accServer(t)
	srv.MustCLI(t, "write", mount+"/roles/a", "environment=dev")
	srv.MustCLI(t, "write", mount+"/roles/b", "environment=prod")
	issue := func(role string) string {
		t.Helper()
		s, err := srv.Client.Logical().Write(mount+"/creds/"+role, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s.Data["key_id"].(string)
	}
	a1, a2, b1 := issue("a"), issue("a"), issue("b")
	srv.MustCLI(t, "delete", mount+"/keys/"+a2)
	config := providerBlock(srv, mount) + `
data "cryptokeys_keys" "all" {}

data "cryptokeys_keys" "role_a" {
  role = "a"
}

data "cryptokeys_keys" "prod" {
  environment = "prod"
}

data "cryptokeys_keys" "a_active" {
  role   = "a"
  status = "active"
}
`
	ids := func(ids ...string) knownvalue.Check {
		slices.Sort(ids)
		checks := make([]knownvalue.Check, len(ids))
		for i, id := range ids {
			checks[i] = knownvalue.ObjectPartial(map[string]knownvalue.Check{"key_id": knownvalue.StringExact(id)})
		}
		return knownvalue.ListExact(checks)
	}
	keys := tfjsonpath.New("keys")
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		Steps: []resource.TestStep{{
			Config: config,
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue("data.cryptokeys_keys.all", keys, ids(a1, a2, b1)),
				statecheck.ExpectKnownValue("data.cryptokeys_keys.role_a", keys, ids(a1, a2)),
				statecheck.ExpectKnownValue("data.cryptokeys_keys.prod", keys, ids(b1)),
				statecheck.ExpectKnownValue("data.cryptokeys_keys.a_active", keys, ids(a1)),
				statecheck.ExpectKnownValue("data.cryptokeys_keys.prod", keys.AtSliceIndex(0).AtMapKey("environment"), knownvalue.StringExact("prod")),
			},
		}},
	})
}
