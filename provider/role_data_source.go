package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework-timetypes/timetypes"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

var _ datasource.DataSourceWithConfigure = (*roleDataSource)(nil)

func newRoleDataSource() datasource.DataSource { return &roleDataSource{} }

type roleDataSource struct{ c *client }

// roleDataModel shares the resource's role attributes (roleAttrs).
type roleDataModel struct {
	Mount types.String `tfsdk:"mount"`
	Name  types.String `tfsdk:"name"`
	roleAttrs
}

func (d *roleDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_role"
}

func (d *roleDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	computedSet := func(desc string) schema.SetAttribute {
		return schema.SetAttribute{ElementType: types.StringType, Computed: true, Description: desc}
	}
	resp.Schema = schema.Schema{
		Description: "Reads a role of the cryptokeys engine.",
		Attributes: map[string]schema.Attribute{
			"mount":           schema.StringAttribute{Optional: true, Description: "Engine path. Default: the provider's mount."},
			"name":            schema.StringAttribute{Required: true, Description: "Role name.", Validators: nameValidators()},
			"environment":     schema.StringAttribute{Computed: true, Description: "Environment of the role's keys."},
			"scopes":          computedSet("Scopes of the role's keys."),
			"key_type":        schema.StringAttribute{Computed: true, Description: "bearer, hmac or ed25519."},
			"ttl":             schema.StringAttribute{CustomType: timetypes.GoDurationType{}, Computed: true, Description: "Lease TTL (Go duration; 0s = engine default)."},
			"max_ttl":         schema.StringAttribute{CustomType: timetypes.GoDurationType{}, Computed: true, Description: "Maximum lifetime (Go duration; 0s = engine default)."},
			"allowed_cidrs":   computedSet("Allowed source CIDR blocks."),
			"rate_limit":      schema.Float64Attribute{Computed: true, Description: "Requests per second per key (0 = unlimited)."},
			"rate_burst":      schema.Int64Attribute{Computed: true, Description: "Token bucket size."},
			"max_active_keys": schema.Int64Attribute{Computed: true, Description: "Most live keys at once (0 = unlimited)."},
			"recv_window":     schema.Int64Attribute{Computed: true, Description: "Signed request window in milliseconds."},
			"metadata":        schema.MapAttribute{ElementType: types.StringType, Computed: true, Description: "Metadata copied onto keys."},
			"description":     schema.StringAttribute{Computed: true, Description: "Description."},
			"on_anomaly":      schema.StringAttribute{Computed: true, Description: "none, flag or suspend."},
			"anomaly_rate":    schema.Float64Attribute{Computed: true, Description: "Sustained requests per second above which a key is anomalous (0 = off)."},
			"flag_new_source": schema.BoolAttribute{Computed: true, Description: "Whether a new source IP is an anomaly."},
		},
	}
}

func (d *roleDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.c = configuredClient(req.ProviderData, &resp.Diagnostics)
}

func (d *roleDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var m roleDataModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	mount, ok := engineAt(ctx, d.c, m.Mount, &resp.Diagnostics)
	if !ok {
		return
	}
	p := rolePath(mount, m.Name.ValueString())
	role, found, diags := vaultRead[roleAPI](ctx, d.c, p)
	if resp.Diagnostics.Append(diags...); resp.Diagnostics.HasError() {
		return
	}
	if !found {
		resp.Diagnostics.AddError("Role not found", "no role at "+p)
		return
	}
	m.Mount = types.StringValue(mount)
	resp.Diagnostics.Append(m.fromAPI(ctx, role, false)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}
