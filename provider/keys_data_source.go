package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

var _ datasource.DataSourceWithConfigure = (*keysDataSource)(nil)

func newKeysDataSource() datasource.DataSource { return &keysDataSource{} }

type keysDataSource struct{ c *client }

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

type keysDataModel struct {
	Mount       types.String `tfsdk:"mount"`
	Role        types.String `tfsdk:"role"`
	Environment types.String `tfsdk:"environment"`
	Status      types.String `tfsdk:"status"`
	Keys        []keyAttrs   `tfsdk:"keys"`
}

func (d *keysDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var m keysDataModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	mount, ok := engineAt(ctx, d.c, m.Mount, &resp.Diagnostics)
	if !ok {
		return
	}
	query := map[string][]string{}
	if v := m.Role.ValueString(); v != "" {
		query["role"] = []string{v}
	}
	if v := m.Environment.ValueString(); v != "" {
		query["environment"] = []string{v}
	}
	s, err := listWithQuery(ctx, d.c, mount+"/keys", query)
	if err != nil {
		resp.Diagnostics.Append(vaultError(d.c, "listing "+mount+"/keys", err)...)
		return
	}
	var list keyListAPI
	if s != nil {
		if list, err = decode[keyListAPI](s); err != nil {
			resp.Diagnostics.Append(vaultError(d.c, "listing "+mount+"/keys", err)...)
			return
		}
	}
	ids := sortedCopy(list.Keys)
	m.Keys = make([]keyAttrs, 0, len(ids))
	for _, id := range ids {
		k, found, diags := vaultRead[keyAPI](ctx, d.c, mount+"/keys/"+id)
		if resp.Diagnostics.Append(diags...); resp.Diagnostics.HasError() {
			return
		}
		if !found || (m.Environment.ValueString() != "" && k.Environment != m.Environment.ValueString()) ||
			(m.Status.ValueString() != "" && k.Status != m.Status.ValueString()) {
			continue
		}
		a, diags := keyAttrsFromAPI(ctx, k)
		resp.Diagnostics.Append(diags...)
		m.Keys = append(m.Keys, a)
	}
	m.Mount = types.StringValue(mount)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}
