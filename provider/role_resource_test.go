package provider

import (
	"fmt"
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
)

func TestAccRole_updateReplaceDriftImport(t *testing.T) {
	srv, mount := accServer(t)
	cfg := func(env, ttl, desc string) string {
		return providerBlock(srv, mount) + fmt.Sprintf(`
resource "cryptokeys_role" "r" {
  name          = "trader"
  environment   = %q
  scopes        = ["read", "trade"]
  ttl           = %q
  max_ttl       = "24h"
  allowed_cidrs = ["10.0.0.0/8"]
  rate_limit    = 5
  metadata      = { team = "quant" }
  description   = %q
}
`, env, ttl, desc)
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		Steps: []resource.TestStep{
			{
				// The engine's rules are checked at plan time.
				Config:      cfg("Prod!", "1h", "x"),
				ExpectError: regexp.MustCompile(`must match \[a-z\]\[a-z0-9\]\{0,15\}`),
			},
			{
				Config: cfg("prod", "60m", "first"),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("cryptokeys_role.r", tfjsonpath.New("id"), knownvalue.StringExact(mount+"/roles/trader")),
					statecheck.ExpectKnownValue("cryptokeys_role.r", tfjsonpath.New("key_type"), knownvalue.StringExact("bearer")),
					statecheck.ExpectKnownValue("cryptokeys_role.r", tfjsonpath.New("recv_window"), knownvalue.Int64Exact(5000)),
					statecheck.ExpectKnownValue("cryptokeys_role.r", tfjsonpath.New("scopes"), knownvalue.SetExact([]knownvalue.Check{knownvalue.StringExact("read"), knownvalue.StringExact("trade")})),
				},
			},
			{
				// "1h" equals "60m": no diff.
				Config:           cfg("prod", "1h", "first"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
			},
			{
				Config:           cfg("prod", "1h", "second"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction("cryptokeys_role.r", plancheck.ResourceActionUpdate)}},
			},
			{
				// Drift: someone changes the role with the vault CLI; the
				// plan puts it back.
				PreConfig: func() {
					srv.MustCLI(t, "write", mount+"/roles/trader", "scopes=read", "description=changed by hand")
				},
				Config: cfg("prod", "1h", "second"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("cryptokeys_role.r", plancheck.ResourceActionUpdate),
				}},
				Check: func(*terraform.State) error {
					out := srv.MustCLI(t, "read", "-field=description", mount+"/roles/trader")
					if out != "second" {
						return fmt.Errorf("drift not corrected: description %q", out)
					}
					return nil
				},
			},
			{
				Config:           cfg("staging", "1h", "second"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction("cryptokeys_role.r", plancheck.ResourceActionDestroyBeforeCreate)}},
			},
			{
				ResourceName:      "cryptokeys_role.r",
				ImportState:       true,
				ImportStateId:     mount + "/roles/trader",
				ImportStateVerify: true,
			},
		},
	})
}
