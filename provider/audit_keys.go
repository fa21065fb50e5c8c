package provider

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

// secretAuditFields are the request and response fields of the engine that
// carry key material. Vault's audit devices write every field as an HMAC
// unless the mount's audit_non_hmac_request_keys / _response_keys list its
// name; listing one of these would put keys in the audit log in clear.
var secretAuditFields = map[string]string{ // #nosec G101 -- field names and what they hold, not credentials
	"api_key":     "the API key itself (every verify request carries it, every creds and rotate response returns it)",
	"secret_key":  "an hmac key's signing secret (creds and rotate responses)",
	"private_key": "an engine-generated ed25519 private key (creds and rotate responses)",
	"text":        "the text given to revoke/leaked, which holds the leaked keys",
}

// defaultAuditNonHMACKeys is what the provider mounts the engine with: the
// key_id is the public handle auditors follow through a key's life.
var defaultAuditNonHMACKeys = []string{"key_id"}

func defaultAuditKeysValue() types.Set {
	vals := make([]attr.Value, len(defaultAuditNonHMACKeys))
	for i, k := range defaultAuditNonHMACKeys {
		vals[i] = types.StringValue(k)
	}
	return types.SetValueMust(types.StringType, vals)
}

// secretAuditField reports whether Vault would leave a field named s in
// clear in the audit log that holds key material. Vault compares field
// names exactly; case and spaces are folded here so no spelling slips by.
func secretAuditField(s string) (string, bool) {
	f := strings.ToLower(strings.TrimSpace(s))
	_, ok := secretAuditFields[f]
	return f, ok
}

// noSecretAuditKeys refuses, at plan time, an audit_non_hmac_* list that
// names a field carrying key material.
type noSecretAuditKeys struct{}

func (noSecretAuditKeys) Description(context.Context) string {
	return "must not list api_key, secret_key, private_key or text: Vault would write those fields, which carry key material, to the audit log in clear"
}

func (v noSecretAuditKeys) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (noSecretAuditKeys) ValidateSet(ctx context.Context, req validator.SetRequest, resp *validator.SetResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	for _, e := range req.ConfigValue.Elements() {
		s, ok := e.(types.String)
		if !ok || s.IsNull() || s.IsUnknown() {
			continue
		}
		if f, bad := secretAuditField(s.ValueString()); bad {
			resp.Diagnostics.AddAttributeError(req.Path, "Audit setting would log key material in clear",
				fmt.Sprintf("%s must not list %q: Vault's audit devices HMAC every field except those listed here, and %q is %s. Listed, it would be written to the audit log in clear, readable by anyone who can read the log. Remove it; %q is the safe handle to follow a key through audit logs.",
					req.Path, f, f, secretAuditFields[f], "key_id"))
		}
	}
}

// warnSecretAuditKeys is Read's alarm for a dangerous audit setting made
// outside Terraform (`vault secrets tune -audit-non-hmac-request-keys=...`):
// the plan then shows the drift back to the configured, safe value.
func warnSecretAuditKeys(mount, attr string, keys []string, diags *diag.Diagnostics) {
	var bad []string
	for _, k := range keys {
		if f, ok := secretAuditField(k); ok {
			bad = append(bad, f)
		}
	}
	if len(bad) == 0 {
		return
	}
	sort.Strings(bad)
	for _, f := range bad {
		diags.AddAttributeWarning(path.Root(attr), "AUDIT LOG WRITES KEY MATERIAL IN CLEAR",
			fmt.Sprintf("The mount %s lists %q in %s (set outside Terraform, e.g. with `vault secrets tune`). Vault's audit devices now write %s to the audit log in clear instead of as an HMAC: every key that passed through %s since that change is readable by anyone who can read the audit log, and should be treated as leaked (rotate or `revoke/leaked` them). Applying this configuration tunes the mount back to the configured value; `vault secrets tune -%s=key_id %s` does the same by hand.",
				mount, f, attr, secretAuditFields[f], mount, strings.ReplaceAll(attr, "_", "-"), mount))
	}
}
