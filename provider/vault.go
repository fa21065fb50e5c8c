package provider

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/internal/certerr"
	"github.com/hashicorp/terraform-plugin-framework-timetypes/timetypes"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"
	"github.com/hashicorp/vault/api"
)

// configuredClient takes the client from Configure's provider data.
func configuredClient(data any, diags *diag.Diagnostics) *client {
	if data == nil {
		return nil // Configure has not run yet (validate, early plan)
	}
	c, ok := data.(*client)
	if !ok {
		diags.AddError("Unexpected provider data", fmt.Sprintf("got %T", data))
		return nil
	}
	return c
}

// mountOr returns the resource's mount, or the provider's default.
func (c *client) mountOr(v types.String) string {
	if m := strings.Trim(v.ValueString(), "/"); m != "" {
		return m
	}
	return c.mount
}

// vaultError turns a Vault API error into the diagnostic that says what
// went wrong and what to do: every Vault failure is reported through it.
// The operation names what was attempted; no request data (which may hold
// keys) is included.
func vaultError(c *client, operation string, err error) diag.Diagnostics {
	var diags diag.Diagnostics
	var re *api.ResponseError
	var shape *replyShapeError
	switch {
	case errors.As(err, &shape):
		diags.AddError("Unexpected reply from Vault",
			fmt.Sprintf("%s: the engine's reply does not have the shape this provider expects (%v). Check that the provider's and the plugin's versions match.", operation, shape.err))
	case errors.Is(err, errNoReply):
		diags.AddError("Vault returned no data", fmt.Sprintf("%s: %v", operation, err))
	case errors.As(err, &re) && re.StatusCode == http.StatusForbidden:
		diags.AddError("Permission denied by Vault",
			fmt.Sprintf("%s: the token has no policy allowing it (403). Give the token's policy the capability on that path, or use another token. Vault said: %s", operation, strings.Join(re.Errors, "; ")))
	case errors.As(err, &re) && re.StatusCode == http.StatusBadRequest:
		diags.AddError("Vault rejected the request",
			fmt.Sprintf("%s: %s", operation, strings.Join(re.Errors, "; ")))
	case errors.As(err, &re):
		diags.AddError("Vault request failed",
			fmt.Sprintf("%s: HTTP %d: %s", operation, re.StatusCode, strings.Join(re.Errors, "; ")))
	case certerr.Untrusted(err):
		diags.AddError("Vault's TLS certificate is not trusted",
			fmt.Sprintf("%s: the certificate Vault at %s presented could not be verified (%v). Set `ca_cert_file` in the provider block, or VAULT_CACERT, to the PEM file of the CA that signed it. `skip_tls_verify = true` (or VAULT_SKIP_VERIFY) turns verification off: never in production.", operation, c.vault.Address(), rootCause(err)))
	case isUnreachable(err):
		diags.AddError("Cannot reach Vault",
			fmt.Sprintf("%s: Vault at %s did not answer (%v). Check `address` / VAULT_ADDR, that Vault is running and unsealed, and the network in between.", operation, c.vault.Address(), rootCause(err)))
	default:
		diags.AddError("Vault request failed", fmt.Sprintf("%s: %v", operation, err))
	}
	return diags
}

func isUnreachable(err error) bool {
	var ne net.Error
	var ue *url.Error
	var oe *net.OpError
	return errors.As(err, &oe) || errors.As(err, &ne) || errors.As(err, &ue)
}

func rootCause(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}

func isNotFound(err error) bool {
	var re *api.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusNotFound
}

// emptySet and emptyMap are the known, empty values.
var (
	emptySet = types.SetValueMust(types.StringType, []attr.Value{})
	emptyMap = types.MapValueMust(types.StringType, map[string]attr.Value{})
)

// setValue is a Terraform set of strings; empty lists read back as empty
// sets only when the configuration had one, else null, so an unset
// attribute never diffs against [].
func setValue(ctx context.Context, ss []string, prior types.Set, diags *diag.Diagnostics) types.Set {
	if len(ss) == 0 && prior.IsNull() {
		return types.SetNull(types.StringType)
	}
	v, d := types.SetValueFrom(ctx, types.StringType, ss)
	diags.Append(d...)
	return v
}

func mapValue(ctx context.Context, m map[string]string, prior types.Map, diags *diag.Diagnostics) types.Map {
	if len(m) == 0 && prior.IsNull() {
		return types.MapNull(types.StringType)
	}
	v, d := types.MapValueFrom(ctx, types.StringType, m)
	diags.Append(d...)
	return v
}

func stringsOf(ctx context.Context, s types.Set, diags *diag.Diagnostics) []string {
	if s.IsNull() || s.IsUnknown() {
		return nil
	}
	var out []string
	diags.Append(s.ElementsAs(ctx, &out, false)...)
	sort.Strings(out)
	return out
}

func mapOf(ctx context.Context, m types.Map, diags *diag.Diagnostics) map[string]string {
	if m.IsNull() || m.IsUnknown() {
		return nil
	}
	out := map[string]string{}
	diags.Append(m.ElementsAs(ctx, &out, false)...)
	return out
}

// seconds renders a duration for the engine, which takes seconds.
func seconds(d timetypes.GoDuration, diags *diag.Diagnostics) (int64, bool) {
	if d.IsNull() || d.IsUnknown() {
		return 0, false
	}
	v, dd := d.ValueGoDuration()
	diags.Append(dd...)
	return int64(v / time.Second), true
}

// durationValue turns the engine's seconds back into a duration. Zero
// (unset) stays null when the configuration left it unset, so reading
// never invents a diff; semantic equality keeps "60m" matching "1h".
func durationValue(secs float64, prior timetypes.GoDuration) timetypes.GoDuration {
	if secs == 0 && prior.IsNull() {
		return timetypes.NewGoDurationNull()
	}
	d := time.Duration(secs) * time.Second
	if !prior.IsNull() && !prior.IsUnknown() {
		if p, diags := prior.ValueGoDuration(); !diags.HasError() && p == d {
			return prior
		}
	}
	return timetypes.NewGoDurationValueFromStringMust(shortDuration(d))
}

// shortDuration writes 1h rather than Go's 1h0m0s, as people write it.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func rfc3339(s string) timetypes.RFC3339 {
	if s == "" {
		return timetypes.NewRFC3339Null()
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return timetypes.NewRFC3339Null()
	}
	return timetypes.NewRFC3339TimeValue(t)
}

var _ attr.Value = timetypes.GoDuration{}

type attrType = attr.Type

var objectAsOptions = basetypes.ObjectAsOptions{UnhandledNullAsEmpty: true, UnhandledUnknownAsEmpty: true}

// listWithQuery is a LIST with query parameters, which api.Logical lacks:
// a GET with list=true, which Vault treats (and authorizes) as a LIST.
func listWithQuery(ctx context.Context, c *client, p string, query map[string][]string) (*api.Secret, error) {
	params := make(map[string][]string, len(query)+1)
	maps.Copy(params, query)
	params["list"] = []string{"true"}
	resp, err := c.vault.Logical().ReadRawWithDataWithContext(ctx, p, params)
	if resp != nil {
		defer resp.Body.Close()
	}
	if resp != nil && resp.StatusCode == http.StatusNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return api.ParseSecret(resp.Body)
}

// revokeLease ends a lease (synchronously: Vault calls the engine's revoke
// before it answers) through sys/leases/revoke/<lease_id>, the lease in the
// URL rather than the body, so a Vault policy can allow it per mount and
// role (sys/leases/revoke/cryptokeys/creds/prod-*) instead of for every
// lease in Vault.
func revokeLease(ctx context.Context, v *api.Client, leaseID string) error {
	_, err := v.Logical().WriteWithContext(ctx, "sys/leases/revoke/"+strings.TrimPrefix(leaseID, "/"), nil)
	return err
}

// renewLease is revokeLease's counterpart for sys/leases/renew/<lease_id>.
func renewLease(ctx context.Context, v *api.Client, leaseID string, increment int) (*api.Secret, error) {
	return v.Logical().WriteWithContext(ctx, "sys/leases/renew/"+strings.TrimPrefix(leaseID, "/"), map[string]any{"increment": increment})
}
