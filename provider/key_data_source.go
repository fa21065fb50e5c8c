package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
)

var _ datasource.DataSourceWithConfigure = (*keyDataSource)(nil)

func newKeyDataSource() datasource.DataSource { return &keyDataSource{} }

type keyDataSource struct{ c *client }

// keyAttrTypes are the metadata fields of a key, shared by cryptokeys_key
// and the elements of cryptokeys_keys. Never the secret.
var keyAttrTypes = map[string]attr.Type{
	"key_id": types.StringType, "name": types.StringType, "role": types.StringType,
	"environment": types.StringType, "scopes": types.SetType{ElemType: types.StringType},
	"key_type": types.StringType, "status": types.StringType, "created_at": types.StringType,
	"created_by": types.StringType, "expires_at": types.StringType, "revoked_at": types.StringType,
	"revoked_by": types.StringType, "revoke_reason": types.StringType, "last_used_at": types.StringType,
	"use_count": types.Int64Type, "metadata": types.MapType{ElemType: types.StringType},
}

func keyAttributes() map[string]schema.Attribute {
	out := map[string]schema.Attribute{}
	desc := map[string]string{
		"key_id": "Public identifier.", "name": "Label.", "role": "Role it was issued from.",
		"environment": "Environment.", "scopes": "Scopes.", "key_type": "bearer, hmac or ed25519.",
		"status": "active, suspended, revoked or expired.", "created_at": "Issue time (RFC3339).",
		"created_by": "Who issued it.", "expires_at": "When it stops verifying.", "revoked_at": "Revocation time.",
		"revoked_by": "Who revoked it.", "revoke_reason": "Why.", "last_used_at": "Last successful verify.",
		"use_count": "Successful verifies.", "metadata": "Metadata.",
	}
	for k, t := range keyAttrTypes {
		switch t := t.(type) {
		case types.SetType:
			out[k] = schema.SetAttribute{ElementType: t.ElemType, Computed: true, Description: desc[k]}
		case types.MapType:
			out[k] = schema.MapAttribute{ElementType: t.ElemType, Computed: true, Description: desc[k]}
		default:
			if t == types.Int64Type {
				out[k] = schema.Int64Attribute{Computed: true, Description: desc[k]}
			} else {
				out[k] = schema.StringAttribute{Computed: true, Description: desc[k]}
			}
		}
	}
	return out
}

// keyAttrs are a key's metadata as the data sources show it (keyAttrTypes
// are their types): cryptokeys_key embeds them, cryptokeys_keys lists them.
type keyAttrs struct {
	KeyID        types.String `tfsdk:"key_id"`
	Name         types.String `tfsdk:"name"`
	Role         types.String `tfsdk:"role"`
	Environment  types.String `tfsdk:"environment"`
	Scopes       types.Set    `tfsdk:"scopes"`
	KeyType      types.String `tfsdk:"key_type"`
	Status       types.String `tfsdk:"status"`
	CreatedAt    types.String `tfsdk:"created_at"`
	CreatedBy    types.String `tfsdk:"created_by"`
	ExpiresAt    types.String `tfsdk:"expires_at"`
	RevokedAt    types.String `tfsdk:"revoked_at"`
	RevokedBy    types.String `tfsdk:"revoked_by"`
	RevokeReason types.String `tfsdk:"revoke_reason"`
	LastUsedAt   types.String `tfsdk:"last_used_at"`
	UseCount     types.Int64  `tfsdk:"use_count"`
	Metadata     types.Map    `tfsdk:"metadata"`
}

func keyAttrsFromAPI(ctx context.Context, k keyAPI) (keyAttrs, diag.Diagnostics) {
	var diags diag.Diagnostics
	a := keyAttrs{
		KeyID: types.StringValue(k.KeyID), Name: types.StringValue(k.Name), Role: types.StringValue(k.Role),
		Environment: types.StringValue(k.Environment), KeyType: types.StringValue(k.KeyType), Status: types.StringValue(k.Status),
		CreatedAt: types.StringValue(k.CreatedAt), CreatedBy: types.StringValue(k.CreatedBy), ExpiresAt: types.StringValue(k.ExpiresAt),
		RevokedAt: types.StringValue(k.RevokedAt), RevokedBy: types.StringValue(k.RevokedBy), RevokeReason: types.StringValue(k.RevokeReason),
		LastUsedAt: types.StringValue(k.LastUsedAt), UseCount: types.Int64Value(k.UseCount),
		Scopes:   setValue(ctx, nonNil(sortedCopy(k.Scopes)), emptySet, &diags),
		Metadata: mapValue(ctx, wire.NonNilMap(k.Labels), emptyMap, &diags),
	}
	return a, diags
}

type keyDataModel struct {
	Mount types.String `tfsdk:"mount"`
	keyAttrs
}

func (d *keyDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_key"
}

func (d *keyDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	attrs := keyAttributes()
	attrs["key_id"] = schema.StringAttribute{Required: true, Description: "Public identifier of the key.",
		Validators: []validator.String{keyIDValidator()}}
	attrs["mount"] = schema.StringAttribute{Optional: true, Description: "Engine path. Default: the provider's mount."}
	resp.Schema = schema.Schema{Description: "Reads one key's metadata (never its secret).", Attributes: attrs}
}

func (d *keyDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.c = configuredClient(req.ProviderData, &resp.Diagnostics)
}

func (d *keyDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var m keyDataModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	mount, ok := engineAt(ctx, d.c, m.Mount, &resp.Diagnostics)
	if !ok {
		return
	}
	p := mount + "/keys/" + m.KeyID.ValueString()
	k, found, diags := vaultRead[keyAPI](ctx, d.c, p)
	if resp.Diagnostics.Append(diags...); resp.Diagnostics.HasError() {
		return
	}
	if !found {
		resp.Diagnostics.AddError("Key not found", "no key at "+p)
		return
	}
	a, diags := keyAttrsFromAPI(ctx, k)
	resp.Diagnostics.Append(diags...)
	m.Mount, m.keyAttrs = types.StringValue(mount), a
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}
