package provider

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-validators/mapvalidator"
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
	metadataKeyRE = regexp.MustCompile(`^[A-Za-z0-9_.:/-]{1,64}$`)
	controlRE     = regexp.MustCompile(`^[^\x00-\x1f\x7f]*$`)

	keyTypes = []string{"bearer", "hmac", "ed25519"}
)

// metadataValidators mirror the engine's limits on role and key metadata:
// at most 32 pairs, keys of 1-64 safe characters, printable values of at
// most 512 characters.
func metadataValidators() []validator.Map {
	return []validator.Map{
		mapvalidator.SizeAtMost(32),
		mapvalidator.KeysAre(stringvalidator.RegexMatches(metadataKeyRE, "must be 1-64 letters, digits, '_', '.', ':', '/' or '-'")),
		mapvalidator.ValueStringsAre(
			stringvalidator.LengthAtMost(512),
			stringvalidator.RegexMatches(controlRE, "must not contain control characters"),
		),
	}
}

// keyNameValidators mirror the engine's rule for a key's label.
func keyNameValidators() []validator.String {
	return []validator.String{
		stringvalidator.LengthAtMost(128),
		stringvalidator.RegexMatches(controlRE, "must not contain control characters"),
	}
}

// durationAtLeast refuses durations shorter than min. The GoDuration type
// already refuses what does not parse; this adds the engine's bounds (it
// rejects negative TTLs) so that plan, not apply, reports them.
type durationAtLeast time.Duration

func (v durationAtLeast) Description(context.Context) string {
	if v == 0 {
		return "must not be negative"
	}
	return fmt.Sprintf("must be at least %s", time.Duration(v))
}

func (v durationAtLeast) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (v durationAtLeast) ValidateString(ctx context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	d, err := time.ParseDuration(req.ConfigValue.ValueString())
	if err != nil {
		return // the type's own validation reports it
	}
	if d < time.Duration(v) {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid duration", fmt.Sprintf("%q %s", req.ConfigValue.ValueString(), v.Description(ctx)))
	}
}

// ttlWithinMax is the engine's rule that ttl must not exceed max_ttl, for
// configurations where both are known at plan time.
func ttlWithinMax(ttl, maxTTL string) string {
	if ttl == "" || maxTTL == "" {
		return ""
	}
	t, err1 := time.ParseDuration(ttl)
	m, err2 := time.ParseDuration(maxTTL)
	if err1 != nil || err2 != nil || m == 0 || t <= m {
		return ""
	}
	return fmt.Sprintf("ttl (%s) must not exceed max_ttl (%s)", strings.TrimSpace(ttl), strings.TrimSpace(maxTTL))
}

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
