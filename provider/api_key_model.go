package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework-timetypes/timetypes"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/vault/api"
)

// The cryptokeys_api_key resource and its ephemeral twin issue keys the
// same way: these are the attributes they share, embedded in each model.

// keyRequestAttrs are what a key is issued with.
type keyRequestAttrs struct {
	Mount    types.String         `tfsdk:"mount"`
	Role     types.String         `tfsdk:"role"`
	Name     types.String         `tfsdk:"name"`
	TTL      timetypes.GoDuration `tfsdk:"ttl"`
	Scopes   types.Set            `tfsdk:"scopes"`
	Metadata types.Map            `tfsdk:"metadata"`
}

// issuedKeyAttrs are what issuing returns.
type issuedKeyAttrs struct {
	KeyID       types.String      `tfsdk:"key_id"`
	LeaseID     types.String      `tfsdk:"lease_id"`
	APIKey      types.String      `tfsdk:"api_key"`
	SecretKey   types.String      `tfsdk:"secret_key"`
	PrivateKey  types.String      `tfsdk:"private_key"`
	Environment types.String      `tfsdk:"environment"`
	ExpiresAt   timetypes.RFC3339 `tfsdk:"expires_at"`
}

// toAPI is the creds request: only what the configuration sets.
func (a keyRequestAttrs) toAPI(ctx context.Context) (credsRequest, diag.Diagnostics) {
	var diags diag.Diagnostics
	ttl, _ := seconds(a.TTL, &diags)
	return credsRequest{
		TTL:    ttl,
		Scopes: stringsOf(ctx, a.Scopes, &diags),
		Labels: mapOf(ctx, a.Metadata, &diags),
		Name:   a.Name.ValueString(),
	}, diags
}

// fromAPI sets the issued key's attributes from creds' reply and lease.
func (a *issuedKeyAttrs) fromAPI(k credsAPI, s *api.Secret) {
	a.KeyID = types.StringValue(k.KeyID)
	a.LeaseID = types.StringValue(s.LeaseID)
	a.APIKey = types.StringValue(k.APIKey)
	a.SecretKey = optString(k.SecretKey)
	a.PrivateKey = optString(k.PrivateKey)
	a.Environment = types.StringValue(k.Environment)
	a.ExpiresAt = rfc3339(k.ExpiresAt)
}

// issueKey writes creds/<role> at mount: a new key as a leased secret.
func issueKey(ctx context.Context, c *client, mount, role string, body credsRequest) (credsAPI, *api.Secret, error) {
	k, s, err := vaultWrite[credsAPI](ctx, c, mount+"/creds/"+role, body)
	if err == nil && s == nil {
		err = errNoReply
	}
	return k, s, err
}

func optString(s string) types.String {
	if s == "" {
		return types.StringNull()
	}
	return types.StringValue(s)
}
