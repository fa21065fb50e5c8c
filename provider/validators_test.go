package provider

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

func validString(v validator.String, s string) bool {
	resp := &validator.StringResponse{}
	v.ValidateString(context.Background(), validator.StringRequest{Path: path.Root("x"), ConfigValue: types.StringValue(s)}, resp)
	return !resp.Diagnostics.HasError()
}

func validStringAll(vs []validator.String, s string) bool {
	for _, v := range vs {
		if !validString(v, s) {
			return false
		}
	}
	return true
}

func validMap(vs []validator.Map, m map[string]string) bool {
	val, d := types.MapValueFrom(context.Background(), types.StringType, m)
	if d.HasError() {
		panic(d)
	}
	for _, v := range vs {
		resp := &validator.MapResponse{}
		v.ValidateMap(context.Background(), validator.MapRequest{Path: path.Root("m"), ConfigValue: val}, resp)
		if resp.Diagnostics.HasError() {
			return false
		}
	}
	return true
}

// The plan-time rules must agree with the engine's, or a plan passes that
// apply then fails (or the reverse).
func TestValidatorsMirrorTheEngine(t *testing.T) {
	for _, env := range []string{"dev", "prod", "p", "staging2", "abcdefghijklmnop", "", "Prod", "2dev", "dev-1", "abcdefghijklmnopq", "prod_eu"} {
		if got, want := validString(environmentValidator(), env), keyformat.ValidEnvironment(env); got != want {
			t.Errorf("environment %q: provider says %v, keyformat %v", env, got, want)
		}
	}
	names := map[string]bool{
		"prod-trader": true, "a": true, "r.1_x": true, strings.Repeat("n", 64): true,
		"": false, "-lead": false, "trail-": false, "has space": false, "sl/ash": false, strings.Repeat("n", 65): false,
	}
	for name, want := range names {
		if got := validStringAll(nameValidators(), name); got != want {
			t.Errorf("role name %q: %v, want %v", name, got, want)
		}
	}
	cidrs := map[string]bool{"10.0.0.0/8": true, "203.0.113.7": true, "2001:db8::/32": true, "10.0.0.0/33": false, "example.com": false, "": false}
	for c, want := range cidrs {
		if got := validString(cidrValidator{}, c); got != want {
			t.Errorf("cidr %q: %v, want %v", c, got, want)
		}
	}
	for _, s := range []string{"read", "trade", "wallet:withdraw", "md.l2"} {
		if !validString(scopeValidator(), s) {
			t.Errorf("scope %q refused", s)
		}
	}
	for _, s := range []string{"Read", "1x", "", "a b"} {
		if validString(scopeValidator(), s) {
			t.Errorf("scope %q accepted", s)
		}
	}
	if !validStringAll(keyNameValidators(), "acme bot #1") || validStringAll(keyNameValidators(), "evil\x1b[31m") || validStringAll(keyNameValidators(), strings.Repeat("x", 129)) {
		t.Error("key name rules differ from the engine's")
	}
}

func TestMetadataValidators(t *testing.T) {
	big := map[string]string{}
	for i := range 33 {
		big["k"+strings.Repeat("x", i)] = "v"
	}
	cases := []struct {
		m    map[string]string
		want bool
	}{
		{map[string]string{"customer": "acme", "team/desk": "eu:1"}, true},
		{map[string]string{"bad key": "v"}, false},
		{map[string]string{strings.Repeat("k", 65): "v"}, false},
		{map[string]string{"k": strings.Repeat("v", 513)}, false},
		{map[string]string{"k": "line\nbreak"}, false},
		{big, false},
	}
	for i, c := range cases {
		if got := validMap(metadataValidators(), c.m); got != c.want {
			t.Errorf("case %d: %v, want %v", i, got, c.want)
		}
	}
}

func TestDurationBounds(t *testing.T) {
	if !validString(durationAtLeast(0), "0s") || validString(durationAtLeast(0), "-1h") {
		t.Error("durationAtLeast(0) must accept 0s and refuse negatives")
	}
	if validString(durationAtLeast(time.Second), "0s") || !validString(durationAtLeast(time.Second), "168h") {
		t.Error("durationAtLeast(1s) must refuse 0s and accept 168h")
	}
	// Unparseable input is the GoDuration type's to report, not ours.
	if !validString(durationAtLeast(time.Second), "soon") {
		t.Error("durationAtLeast reported an unparseable duration")
	}
	cases := []struct{ ttl, max, want string }{
		{"1h", "24h", ""},
		{"24h", "1440m", ""},
		{"48h", "24h", "ttl (48h) must not exceed max_ttl (24h)"},
		{"48h", "0s", ""}, // 0 means the engine's default, no bound here
		{"", "24h", ""},
	}
	for _, c := range cases {
		if got := ttlWithinMax(c.ttl, c.max); got != c.want {
			t.Errorf("ttlWithinMax(%q, %q) = %q, want %q", c.ttl, c.max, got, c.want)
		}
	}
}
