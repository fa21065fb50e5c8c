package provider

import (
	"context"
	"sort"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

var _ datasource.DataSourceWithConfigure = (*keysDataSource)(nil)

func newKeysDataSource() datasource.DataSource { return &keysDataSource{} }

type keysDataSource struct{ c *client }

func pathRoot(name string) path.Path { return path.Root(name) }

func (d *keysDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_keys"
}

func (d *keysDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		Description: "Lists keys of the engine (metadata only), optionally of one role or environment.",
		Attributes: map[string]schema.Attribute{
			"mount":       schema.StringAttribute{Optional: true, Description: "Engine path. Default: the provider's mount."},
			"role":        schema.StringAttribute{Optional: true, Description: "Only keys of this role.", Validators: nameValidators()},
			"environment": schema.StringAttribute{Optional: true, Description: "Only keys of this environment.", Validators: []validator.String{environmentValidator()}},
			"status":      schema.StringAttribute{Optional: true, Description: "Only keys with this status (active, suspended, revoked, expired)."},
			"keys": schema.ListNestedAttribute{
				Computed:     true,
				Description:  "The keys, ordered by key_id.",
				NestedObject: schema.NestedAttributeObject{Attributes: keyAttributes()},
			},
		},
	}
}

func (d *keysDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.c = configuredClient(req.ProviderData, &resp.Diagnostics)
}

func (d *keysDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var mount, role, env, status types.String
	for name, dst := range map[string]*types.String{"mount": &mount, "role": &role, "environment": &env, "status": &status} {
		resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root(name), dst)...)
	}
	if resp.Diagnostics.HasError() || !ready(d.c, &resp.Diagnostics) {
		return
	}
	m := d.c.mountOr(mount)
	if !d.c.checkEngine(ctx, m, &resp.Diagnostics) {
		return
	}
	query := map[string][]string{}
	if v := role.ValueString(); v != "" {
		query["role"] = []string{v}
	}
	if v := env.ValueString(); v != "" {
		query["environment"] = []string{v}
	}
	s, err := listWithQuery(ctx, d.c, m+"/keys", query)
	if err != nil {
		addVaultError(&resp.Diagnostics, d.c, "listing "+m+"/keys", err)
		return
	}
	var ids []string
	if s != nil {
		ids = strList(s.Data, "keys")
	}
	sort.Strings(ids)
	objs := make([]types.Object, 0, len(ids))
	for _, id := range ids {
		ks, err := d.c.vault.Logical().ReadWithContext(ctx, m+"/keys/"+id)
		if err != nil {
			addVaultError(&resp.Diagnostics, d.c, "reading "+m+"/keys/"+id, err)
			return
		}
		if ks == nil || (env.ValueString() != "" && str(ks.Data, "environment") != env.ValueString()) ||
			(status.ValueString() != "" && str(ks.Data, "status") != status.ValueString()) {
			continue
		}
		objs = append(objs, keyObject(ctx, ks.Data, &resp.Diagnostics))
	}
	list, dd := types.ListValueFrom(ctx, types.ObjectType{AttrTypes: keyAttrTypes}, objs)
	resp.Diagnostics.Append(dd...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("keys"), list)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("mount"), m)...)
	for name, v := range map[string]types.String{"role": role, "environment": env, "status": status} {
		resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root(name), v)...)
	}
}
