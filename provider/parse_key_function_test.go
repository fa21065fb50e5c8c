package provider

import (
	"regexp"
	"testing"

	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
)

// parse_key runs offline, so it needs Terraform but no Vault.
func TestAccParseKeyFunction(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the Terraform CLI")
	}
	k, err := keyformat.Generate("ck", "prod")
	if err != nil {
		t.Fatal(err)
	}
	bad := []byte(k.Raw())
	bad[len(bad)-1] = map[bool]byte{true: 'B', false: 'A'}[bad[len(bad)-1] == 'A']
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		Steps: []resource.TestStep{
			{
				Config: `
output "good" {
  value = provider::cryptokeys::parse_key("` + k.Raw() + `")
}
output "bad_checksum" {
  value = provider::cryptokeys::parse_key("` + string(bad) + `")
}
`,
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownOutputValue("good", knownvalue.ObjectExact(map[string]knownvalue.Check{
						"prefix": knownvalue.StringExact("ck"), "environment": knownvalue.StringExact("prod"),
						"key_id": knownvalue.StringExact(k.KeyID), "checksum_valid": knownvalue.Bool(true),
					})),
					statecheck.ExpectKnownOutputValue("bad_checksum", knownvalue.ObjectPartial(map[string]knownvalue.Check{
						"key_id": knownvalue.StringExact(k.KeyID), "checksum_valid": knownvalue.Bool(false),
					})),
				},
			},
			{
				Config:      `output "x" { value = provider::cryptokeys::parse_key("not a key") }`,
				ExpectError: regexp.MustCompile(`not a well-formed cryptokeys key`),
			},
		},
	})
}
