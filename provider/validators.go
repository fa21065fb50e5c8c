package provider

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"

	"github.com/hashicorp/terraform-plugin-framework-validators/mapvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
)

// The engine's rules are the contract's (package wire): plan checks the
// same functions the engine applies, so a bad value is reported before
// anything reaches Vault.

var keyTypes = []string{"bearer", "hmac", "ed25519"}

// rule is a string validator from one of wire's checks and the message
// that names it.
type rule struct {
	valid func(string) bool
	msg   string
}

func (r rule) Description(context.Context) string             { return r.msg }
func (r rule) MarkdownDescription(ctx context.Context) string { return r.Description(ctx) }

func (r rule) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if v := req.ConfigValue.ValueString(); !r.valid(v) {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid value", fmt.Sprintf("%q %s", v, r.msg))
	}
}

func printableValue(v string) bool { return !wire.HasControl(v) }

// metadataValidators are the engine's limits on role and key labels: at
// most wire.MaxLabels pairs, keys of safe characters, printable values of
// bounded length.
func metadataValidators() []validator.Map {
	return []validator.Map{
		mapvalidator.SizeAtMost(wire.MaxLabels),
		mapvalidator.KeysAre(rule{wire.ValidLabelKey, wire.LabelKeyRule}),
		mapvalidator.ValueStringsAre(
			stringvalidator.LengthAtMost(wire.MaxLabelValueLen),
			rule{printableValue, wire.ControlRule},
		),
	}
}

// keyNameValidators are the engine's rule for a key's name.
func keyNameValidators() []validator.String {
	return []validator.String{rule{wire.ValidKeyName, fmt.Sprintf("must be at most %d printable characters", wire.MaxKeyNameLen)}}
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
	return []validator.String{rule{wire.ValidName, wire.NameRule}}
}

func environmentValidator() validator.String {
	return rule{wire.ValidEnvironment, wire.EnvironmentRule + " (dev, staging, prod...)"}
}

func prefixValidator() validator.String { return rule{wire.ValidPrefix, wire.PrefixRule} }

func scopeValidator() validator.String { return rule{wire.ValidScope, wire.ScopeRule} }

func keyIDValidator() validator.String { return rule{keyformat.ValidKeyID, wire.KeyIDRule} }

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
