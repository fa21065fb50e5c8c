package provider

import (
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

// Finding 13: no spelling of a field that carries key material passes the
// audit_non_hmac_* validator; the fields auditors need do.
func TestNoSecretAuditKeys(t *testing.T) {
	for _, tc := range []struct {
		keys []string
		bad  string
	}{
		{[]string{"key_id"}, ""},
		{[]string{"key_id", "role", "environment", "code"}, ""},
		{[]string{}, ""},
		{[]string{"key_id", "api_key"}, "api_key"},
		{[]string{"secret_key"}, "secret_key"},
		{[]string{"private_key"}, "private_key"},
		{[]string{"text"}, "text"},
		{[]string{" API_KEY "}, "api_key"},
		{[]string{"Private_Key"}, "private_key"},
	} {
		vals := make([]attr.Value, len(tc.keys))
		for i, k := range tc.keys {
			vals[i] = types.StringValue(k)
		}
		var resp validator.SetResponse
		noSecretAuditKeys{}.ValidateSet(t.Context(), validator.SetRequest{
			Path: path.Root("audit_non_hmac_request_keys"), ConfigValue: types.SetValueMust(types.StringType, vals),
		}, &resp)
		if tc.bad == "" {
			if resp.Diagnostics.HasError() {
				t.Errorf("%q refused: %v", tc.keys, resp.Diagnostics)
			}
			continue
		}
		if !resp.Diagnostics.HasError() || !strings.Contains(resp.Diagnostics[0].Detail(), `must not list "`+tc.bad+`"`) {
			t.Errorf("%q: want a refusal naming %s, got %v", tc.keys, tc.bad, resp.Diagnostics)
		}
	}
}

func TestWarnSecretAuditKeys(t *testing.T) {
	var d diag.Diagnostics
	warnSecretAuditKeys("cryptokeys", "audit_non_hmac_request_keys", []string{"key_id", "api_key"}, &d)
	if len(d) != 1 || d.HasError() || !strings.Contains(d[0].Detail(), `"api_key"`) || !strings.Contains(d[0].Detail(), "in clear") {
		t.Fatalf("want one warning naming api_key, got %v", d)
	}
	d = nil
	warnSecretAuditKeys("cryptokeys", "audit_non_hmac_request_keys", []string{"key_id"}, &d)
	if len(d) != 0 {
		t.Fatalf("a safe list warned: %v", d)
	}
}
