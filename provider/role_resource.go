package provider

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timetypes/timetypes"
	"github.com/hashicorp/terraform-plugin-framework-validators/float64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/setvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

var (
	_ resource.ResourceWithConfigure      = (*roleResource)(nil)
	_ resource.ResourceWithImportState    = (*roleResource)(nil)
	_ resource.ResourceWithValidateConfig = (*roleResource)(nil)
	_ resource.ResourceWithModifyPlan     = (*roleResource)(nil)
)

func newRoleResource() resource.Resource { return &roleResource{} }

type roleResource struct{ c *client }

type roleModel struct {
	ID            types.String         `tfsdk:"id"`
	Mount         types.String         `tfsdk:"mount"`
	Name          types.String         `tfsdk:"name"`
	Environment   types.String         `tfsdk:"environment"`
	Scopes        types.Set            `tfsdk:"scopes"`
	KeyType       types.String         `tfsdk:"key_type"`
	TTL           timetypes.GoDuration `tfsdk:"ttl"`
	MaxTTL        timetypes.GoDuration `tfsdk:"max_ttl"`
	AllowedCIDRs  types.Set            `tfsdk:"allowed_cidrs"`
	RateLimit     types.Float64        `tfsdk:"rate_limit"`
	RateBurst     types.Int64          `tfsdk:"rate_burst"`
	MaxActiveKeys types.Int64          `tfsdk:"max_active_keys"`
	RecvWindow    types.Int64          `tfsdk:"recv_window"`
	Metadata      types.Map            `tfsdk:"metadata"`
	Description   types.String         `tfsdk:"description"`
	OnAnomaly     types.String         `tfsdk:"on_anomaly"`
	AnomalyRate   types.Float64        `tfsdk:"anomaly_rate"`
	FlagNewSource types.Bool           `tfsdk:"flag_new_source"`
}

func (r *roleResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_role"
}

func mountAttribute() schema.StringAttribute {
	return schema.StringAttribute{
		Optional:      true,
		Computed:      true,
		Description:   "Path of the cryptokeys engine. Default: the provider's mount.",
		PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown(), stringplanmodifier.RequiresReplaceIfConfigured()},
	}
}

func (r *roleResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		Description: "A role of the cryptokeys engine: the environment, scopes, key type, TTLs, source CIDRs and limits of the keys issued from it. Import with `<mount>/roles/<name>`.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				Computed:      true,
				Description:   "`<mount>/roles/<name>`.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"mount": mountAttribute(),
			"name": schema.StringAttribute{
				Required:      true,
				Description:   "Role name (letters, digits, '_', '-', '.'; at most 64).",
				Validators:    nameValidators(),
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"environment": schema.StringAttribute{
				Required:      true,
				Description:   "Environment of the role's keys, [a-z][a-z0-9]{0,15}. A key verifies only in its own environment. Changing it replaces the role.",
				Validators:    []validator.String{environmentValidator()},
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"scopes": schema.SetAttribute{
				ElementType: types.StringType,
				Optional:    true,
				Description: "Scopes the role's keys carry. Must be in the engine's scope catalog when one is configured.",
				Validators:  []validator.Set{setvalidator.ValueStringsAre(scopeValidator()), setvalidator.SizeAtMost(64)},
			},
			"key_type": schema.StringAttribute{
				Optional:      true,
				Computed:      true,
				Default:       stringdefault.StaticString("bearer"),
				Description:   "bearer, hmac or ed25519. Changing it replaces the role.",
				Validators:    []validator.String{stringvalidator.OneOf(keyTypes...)},
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"ttl": schema.StringAttribute{
				CustomType:    timetypes.GoDurationType{},
				Optional:      true,
				Description:   "Lease TTL of issued keys, a Go duration (\"720h\").",
				Validators:    []validator.String{durationAtLeast(0)},
				PlanModifiers: durationModifiers(),
			},
			"max_ttl": schema.StringAttribute{
				CustomType:    timetypes.GoDurationType{},
				Optional:      true,
				Description:   "Longest a key may live, renewals included, a Go duration.",
				Validators:    []validator.String{durationAtLeast(0)},
				PlanModifiers: durationModifiers(),
			},
			"allowed_cidrs": schema.SetAttribute{
				ElementType: types.StringType,
				Optional:    true,
				Description: "Source CIDR blocks the keys may be used from.",
				Validators:  []validator.Set{setvalidator.ValueStringsAre(cidrValidator{}), setvalidator.SizeAtMost(64)},
			},
			"rate_limit": schema.Float64Attribute{
				Optional:    true,
				Description: "Requests per second per key (token bucket in verify). Unset or 0: unlimited.",
				Validators:  []validator.Float64{float64validator.Between(0, 1e6)},
			},
			"rate_burst": schema.Int64Attribute{
				Optional:    true,
				Description: "Token bucket size. Unset: ceil(rate_limit).",
				Validators:  []validator.Int64{int64validator.Between(0, 1e6)},
			},
			"max_active_keys": schema.Int64Attribute{
				Optional:    true,
				Description: "Most live keys the role may have at once. Unset or 0: unlimited.",
				Validators:  []validator.Int64{int64validator.Between(0, 1_000_000)},
			},
			"recv_window": schema.Int64Attribute{
				Optional:    true,
				Computed:    true,
				Default:     int64default.StaticInt64(5000),
				Description: "Milliseconds a signed request's timestamp may differ from now (1-60000).",
				Validators:  []validator.Int64{int64validator.Between(1, 60000)},
			},
			"metadata": schema.MapAttribute{
				ElementType: types.StringType,
				Optional:    true,
				Description: "Key-value pairs copied onto every key and returned by verify (at most 32; keys of letters, digits, '_', '.', ':', '/', '-').",
				Validators:  metadataValidators(),
			},
			"description": schema.StringAttribute{
				Optional:    true,
				Description: "Human-readable description.",
				Validators:  []validator.String{stringvalidator.LengthAtMost(1024)},
			},
			"on_anomaly": schema.StringAttribute{
				Optional:    true,
				Computed:    true,
				Default:     stringdefault.StaticString("none"),
				Description: "none, flag or suspend: what verify does when a key is used anomalously.",
				Validators:  []validator.String{stringvalidator.OneOf("none", "flag", "suspend")},
			},
			"anomaly_rate": schema.Float64Attribute{
				Optional:    true,
				Description: "Sustained requests per second above which a key is anomalous. Unset or 0: off.",
				Validators:  []validator.Float64{float64validator.Between(0, 1e6)},
			},
			"flag_new_source": schema.BoolAttribute{
				Optional:    true,
				Computed:    true,
				Default:     booldefault.StaticBool(false),
				Description: "Treat a request from a source IP the key has never used as an anomaly.",
			},
		},
	}
}

// ValidateConfig checks across attributes what the engine would refuse.
func (r *roleResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var ttl, maxTTL timetypes.GoDuration
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("ttl"), &ttl)...)
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("max_ttl"), &maxTTL)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if msg := ttlWithinMax(ttl.ValueString(), maxTTL.ValueString()); msg != "" {
		resp.Diagnostics.AddAttributeError(path.Root("ttl"), "Invalid ttl", msg)
	}
}

// ModifyPlan warns, at plan time, about a ttl or max_ttl the mount's own
// max_lease_ttl silently caps (issue 21: a role max_ttl of 2160h on a mount
// capped at 768h gives 768h keys).
func (r *roleResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() || r.c == nil {
		return
	}
	var m roleModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() || m.Mount.IsUnknown() {
		return
	}
	warnAboveMountMax(ctx, r.c, r.c.mountOr(m.Mount), m, true, &resp.Diagnostics)
}

// warnAboveMountMax adds a warning for each of the role's ttl and max_ttl
// that exceeds the mount's max_lease_ttl, naming the real limit. It reads
// sys/mounts/<mount>/tune; a token that may not, or a mount not created
// yet, gets no warning. At plan time the limit is the mount's current one,
// which a cryptokeys_secrets_engine change in the same apply may still
// raise; the warning says so, and the apply checks again.
func warnAboveMountMax(ctx context.Context, c *client, mount string, m roleModel, planning bool, diags *diag.Diagnostics) {
	t, err := c.vault.Sys().MountConfigWithContext(ctx, mount)
	if err != nil || t == nil || t.MaxLeaseTTL <= 0 {
		return
	}
	limit := time.Duration(t.MaxLeaseTTL) * time.Second
	for _, a := range []struct {
		name string
		v    timetypes.GoDuration
	}{{"max_ttl", m.MaxTTL}, {"ttl", m.TTL}} {
		if a.v.IsNull() || a.v.IsUnknown() {
			continue
		}
		d, dd := a.v.ValueGoDuration()
		if dd.HasError() || d <= limit {
			continue
		}
		caps := "caps"
		note := ""
		if planning {
			caps = "currently caps"
			note = " (If this plan raises the mount's max_lease_ttl in the same apply, the apply checks again and warns only if the role still exceeds it.)"
		}
		diags.AddAttributeWarning(path.Root(a.name), "Role "+a.name+" exceeds the mount's max_lease_ttl",
			fmt.Sprintf("Role %s has %s = %s, but the mount %s %s every lease at %s (its max_lease_ttl): Vault issues and renews this role's keys for at most %s. Raise the mount's limit (max_lease_ttl of cryptokeys_secrets_engine, or `vault secrets tune -max-lease-ttl=%s %s`) or lower %s to %s.%s",
				m.Name.ValueString(), a.name, a.v.ValueString(), mount, caps, shortDuration(limit), shortDuration(limit), shortDuration(d), mount, a.name, shortDuration(limit), note))
	}
}

func (r *roleResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.c = configuredClient(req.ProviderData, &resp.Diagnostics)
}

func rolePath(mount, name string) string { return mount + "/roles/" + name }

// roleData is the full write: unset attributes are sent as their zero value
// so that removing one from the configuration clears it in Vault.
func roleData(ctx context.Context, m roleModel, diags *diag.Diagnostics) map[string]any {
	ttl, _ := seconds(m.TTL, diags)
	maxTTL, _ := seconds(m.MaxTTL, diags)
	md := mapOf(ctx, m.Metadata, diags)
	if md == nil {
		md = map[string]string{}
	}
	return map[string]any{
		"environment":     m.Environment.ValueString(),
		"scopes":          nonNil(stringsOf(ctx, m.Scopes, diags)),
		"key_type":        m.KeyType.ValueString(),
		"ttl":             ttl,
		"max_ttl":         maxTTL,
		"allowed_cidrs":   nonNil(stringsOf(ctx, m.AllowedCIDRs, diags)),
		"rate_limit":      m.RateLimit.ValueFloat64(),
		"rate_burst":      m.RateBurst.ValueInt64(),
		"max_active_keys": m.MaxActiveKeys.ValueInt64(),
		"recv_window":     fmt.Sprint(m.RecvWindow.ValueInt64()),
		"labels":          md,
		"description":     m.Description.ValueString(),
		"on_anomaly":      m.OnAnomaly.ValueString(),
		"anomaly_rate":    m.AnomalyRate.ValueFloat64(),
		"flag_new_source": m.FlagNewSource.ValueBool(),
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (r *roleResource) write(ctx context.Context, m *roleModel, diags *diag.Diagnostics) {
	if !ready(r.c, diags) {
		return
	}
	mount := r.c.mountOr(m.Mount)
	if !r.c.checkEngine(ctx, mount, diags) {
		return
	}
	data := roleData(ctx, *m, diags)
	if diags.HasError() {
		return
	}
	p := rolePath(mount, m.Name.ValueString())
	if _, err := r.c.vault.Logical().WriteWithContext(ctx, p, data); err != nil {
		addVaultError(diags, r.c, "writing "+p, err)
		return
	}
	m.Mount = types.StringValue(mount)
	m.ID = types.StringValue(p)
	r.read(ctx, m, diags)
	// Again after the write: the plan may not have seen the mount (created
	// in the same apply) or its final max_lease_ttl.
	warnAboveMountMax(ctx, r.c, mount, *m, false, diags)
}

// read refreshes m from Vault; it reports false when the role is gone.
func (r *roleResource) read(ctx context.Context, m *roleModel, diags *diag.Diagnostics) bool {
	p := rolePath(r.c.mountOr(m.Mount), m.Name.ValueString())
	s, err := r.c.vault.Logical().ReadWithContext(ctx, p)
	if err != nil {
		addVaultError(diags, r.c, "reading "+p, err)
		return false
	}
	if s == nil {
		return false
	}
	d := s.Data
	m.Environment = types.StringValue(str(d, "environment"))
	m.Scopes = setValue(ctx, strList(d, "scopes"), m.Scopes, diags)
	m.KeyType = types.StringValue(str(d, "key_type"))
	m.TTL = durationValue(num(d, "ttl"), m.TTL)
	m.MaxTTL = durationValue(num(d, "max_ttl"), m.MaxTTL)
	m.AllowedCIDRs = setValue(ctx, strList(d, "allowed_cidrs"), m.AllowedCIDRs, diags)
	m.RateLimit = optFloat(num(d, "rate_limit"), m.RateLimit)
	m.RateBurst = optInt(num(d, "rate_burst"), m.RateBurst)
	m.MaxActiveKeys = optInt(num(d, "max_active_keys"), m.MaxActiveKeys)
	m.RecvWindow = types.Int64Value(int64(num(d, "recv_window")))
	m.Metadata = mapValue(ctx, strMap(d, "labels"), m.Metadata, diags)
	if desc := str(d, "description"); desc != "" || !m.Description.IsNull() {
		m.Description = types.StringValue(desc)
	}
	m.OnAnomaly = types.StringValue(str(d, "on_anomaly"))
	m.AnomalyRate = optFloat(num(d, "anomaly_rate"), m.AnomalyRate)
	m.FlagNewSource = types.BoolValue(boolean(d, "flag_new_source"))
	return true
}

func optFloat(v float64, prior types.Float64) types.Float64 {
	if v == 0 && prior.IsNull() {
		return types.Float64Null()
	}
	return types.Float64Value(v)
}

func optInt(v float64, prior types.Int64) types.Int64 {
	if v == 0 && prior.IsNull() {
		return types.Int64Null()
	}
	return types.Int64Value(int64(v))
}

func (r *roleResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var m roleModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	r.write(ctx, &m, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *roleResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var m roleModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() || !ready(r.c, &resp.Diagnostics) {
		return
	}
	if !r.read(ctx, &m, &resp.Diagnostics) {
		if !resp.Diagnostics.HasError() {
			resp.State.RemoveResource(ctx) // deleted outside Terraform: plan re-creates it
		}
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *roleResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var m roleModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	r.write(ctx, &m, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *roleResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var m roleModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() || !ready(r.c, &resp.Diagnostics) {
		return
	}
	p := rolePath(r.c.mountOr(m.Mount), m.Name.ValueString())
	if _, err := r.c.vault.Logical().DeleteWithContext(ctx, p); err != nil && !isNotFound(err) {
		addVaultError(&resp.Diagnostics, r.c, "deleting "+p, err)
	}
}

func (r *roleResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	mount, name, ok := strings.Cut(req.ID, "/roles/")
	if !ok || mount == "" || name == "" || strings.Contains(name, "/") {
		resp.Diagnostics.AddError("Invalid import ID", fmt.Sprintf("want <mount>/roles/<name>, e.g. cryptokeys/roles/prod-trader; got %q", req.ID))
		return
	}
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), req.ID)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("mount"), mount)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("name"), name)...)
}
