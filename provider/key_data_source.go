package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
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

func keyObject(ctx context.Context, d map[string]any, diags *diag.Diagnostics) types.Object {
	scopes, dd := types.SetValueFrom(ctx, types.StringType, strList(d, "scopes"))
	diags.Append(dd...)
	md, dd := types.MapValueFrom(ctx, types.StringType, strMap(d, "labels"))
	diags.Append(dd...)
	vals := map[string]attr.Value{"scopes": scopes, "metadata": md, "use_count": types.Int64Value(int64(num(d, "use_count")))}
	for k := range keyAttrTypes {
		if _, done := vals[k]; !done {
			vals[k] = types.StringValue(str(d, k))
		}
	}
	obj, dd := types.ObjectValue(keyAttrTypes, vals)
	diags.Append(dd...)
	return obj
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
	var mount, keyID types.String
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, pathRoot("mount"), &mount)...)
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, pathRoot("key_id"), &keyID)...)
	if resp.Diagnostics.HasError() || !ready(d.c, &resp.Diagnostics) {
		return
	}
	m := d.c.mountOr(mount)
	if !d.c.checkEngine(ctx, m, &resp.Diagnostics) {
		return
	}
	p := m + "/keys/" + keyID.ValueString()
	s, err := d.c.vault.Logical().ReadWithContext(ctx, p)
	if err != nil {
		addVaultError(&resp.Diagnostics, d.c, "reading "+p, err)
		return
	}
	if s == nil {
		resp.Diagnostics.AddError("Key not found", "no key at "+p)
		return
	}
	obj := keyObject(ctx, s.Data, &resp.Diagnostics)
	for k, v := range obj.Attributes() {
		resp.Diagnostics.Append(resp.State.SetAttribute(ctx, pathRoot(k), v)...)
	}
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, pathRoot("mount"), m)...)
}
