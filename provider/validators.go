package provider

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
)

// The engine's rules, repeated here so `terraform plan` reports a bad
// value before anything reaches Vault.
var (
	nameRE        = regexp.MustCompile(`^\w(([\w-.]+)?\w)?$`)
	environmentRE = regexp.MustCompile(`^[a-z][a-z0-9]{0,15}$`)
	prefixRE      = regexp.MustCompile(`^[a-z][a-z0-9]{1,7}$`)
	scopeRE       = regexp.MustCompile(`^[a-z][a-z0-9_.:-]{0,63}$`)
	keyIDRE       = regexp.MustCompile(`^[0-9A-Za-z]{12}$`)
)

func nameValidators() []validator.String {
	return []validator.String{
		stringvalidator.LengthBetween(1, 64),
		stringvalidator.RegexMatches(nameRE, "must be letters, digits, '_', '-' or '.', starting and ending with a letter or digit"),
	}
}

func environmentValidator() validator.String {
	return stringvalidator.RegexMatches(environmentRE, "must match [a-z][a-z0-9]{0,15} (dev, staging, prod...)")
}

func scopeValidator() validator.String {
	return stringvalidator.RegexMatches(scopeRE, "must match [a-z][a-z0-9_.:-]{0,63}")
}

// cidrValidator accepts a CIDR block or a single address, as the engine does.
type cidrValidator struct{}

func (cidrValidator) Description(context.Context) string {
	return "must be a CIDR block such as 10.0.0.0/8 or a single IP address"
}
func (v cidrValidator) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (cidrValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	s := req.ConfigValue.ValueString()
	if _, err := netip.ParsePrefix(s); err == nil {
		return
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return
	}
	resp.Diagnostics.AddAttributeError(req.Path, "Invalid CIDR block", fmt.Sprintf("%q is not a CIDR block (like 10.0.0.0/8 or 2001:db8::/32) or an IP address", s))
}

var versionRE = regexp.MustCompile(`^v\d+\.\d+\.\d+([-+][0-9A-Za-z.+-]+)?$`)
