package provider

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"

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
	"github.com/hashicorp/terraform-plugin-framework/tfsdk"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"
)

var (
	_ resource.ResourceWithConfigure      = (*roleResource)(nil)
	_ resource.ResourceWithImportState    = (*roleResource)(nil)
	_ resource.ResourceWithValidateConfig = (*roleResource)(nil)
	_ resource.ResourceWithModifyPlan     = (*roleResource)(nil)
)

func newRoleResource() resource.Resource { return &roleResource{} }

type roleResource struct{ c *client }

// roleAttrs are a role's settings, shared by the cryptokeys_role resource
// and data source (each model embeds them).
type roleAttrs struct {
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

type roleModel struct {
	ID    types.String `tfsdk:"id"`
	Mount types.String `tfsdk:"mount"`
	Name  types.String `tfsdk:"name"`
	roleAttrs
}

// toAPI is the role's full write: unset attributes are sent as their zero
// value, so removing one from the configuration clears it in Vault.
func (a roleAttrs) toAPI(ctx context.Context) (roleAPI, diag.Diagnostics) {
	var diags diag.Diagnostics
	ttl, _ := seconds(a.TTL, &diags)
	maxTTL, _ := seconds(a.MaxTTL, &diags)
	labels := mapOf(ctx, a.Metadata, &diags)
	if labels == nil {
		labels = map[string]string{}
	}
	return roleAPI{
		Environment:   a.Environment.ValueString(),
		Scopes:        nonNil(stringsOf(ctx, a.Scopes, &diags)),
		KeyType:       a.KeyType.ValueString(),
		TTL:           ttl,
		MaxTTL:        maxTTL,
		AllowedCIDRs:  nonNil(stringsOf(ctx, a.AllowedCIDRs, &diags)),
		RateLimit:     a.RateLimit.ValueFloat64(),
		RateBurst:     a.RateBurst.ValueInt64(),
		MaxActiveKeys: a.MaxActiveKeys.ValueInt64(),
		RecvWindow:    a.RecvWindow.ValueInt64(),
		Labels:        labels,
		Description:   a.Description.ValueString(),
		OnAnomaly:     a.OnAnomaly.ValueString(),
		AnomalyRate:   a.AnomalyRate.ValueFloat64(),
		FlagNewSource: a.FlagNewSource.ValueBool(),
	}, diags
}

// fromAPI sets a from what Vault holds. With keepUnset (the resource), a
// value Vault reports as zero or empty stays null where a was null, so an
// attribute the configuration leaves out never shows a diff; without it
// (the data source) every attribute gets Vault's value.
func (a *roleAttrs) fromAPI(ctx context.Context, r roleAPI, keepUnset bool) diag.Diagnostics {
	var diags diag.Diagnostics
	if !keepUnset {
		*a = roleAttrs{
			TTL: nonNullDuration(a.TTL), MaxTTL: nonNullDuration(a.MaxTTL),
			Scopes: emptySet, AllowedCIDRs: emptySet, Metadata: emptyMap,
			RateLimit: types.Float64Value(0), RateBurst: types.Int64Value(0), MaxActiveKeys: types.Int64Value(0),
			AnomalyRate: types.Float64Value(0), Description: types.StringValue(""),
		}
	}
	a.Environment = types.StringValue(r.Environment)
	a.Scopes = setValue(ctx, nonNil(sortedCopy(r.Scopes)), a.Scopes, &diags)
	a.KeyType = types.StringValue(r.KeyType)
	a.TTL = durationValue(float64(r.TTL), a.TTL)
	a.MaxTTL = durationValue(float64(r.MaxTTL), a.MaxTTL)
	a.AllowedCIDRs = setValue(ctx, nonNil(sortedCopy(r.AllowedCIDRs)), a.AllowedCIDRs, &diags)
	a.RateLimit = optFloat(r.RateLimit, a.RateLimit)
	a.RateBurst = optInt(r.RateBurst, a.RateBurst)
	a.MaxActiveKeys = optInt(r.MaxActiveKeys, a.MaxActiveKeys)
	a.RecvWindow = types.Int64Value(r.RecvWindow)
	a.Metadata = mapValue(ctx, wire.NonNilMap(r.Labels), a.Metadata, &diags)
	if r.Description != "" || !a.Description.IsNull() {
		a.Description = types.StringValue(r.Description)
	}
	a.OnAnomaly = types.StringValue(r.OnAnomaly)
	a.AnomalyRate = optFloat(r.AnomalyRate, a.AnomalyRate)
	a.FlagNewSource = types.BoolValue(r.FlagNewSource)
	return diags
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

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// apply is Create and Update: both write the planned role in full and
// store what Vault then holds.
func (r *roleResource) apply(ctx context.Context, plan tfsdk.Plan, state *tfsdk.State) diag.Diagnostics {
	var m roleModel
	diags := plan.Get(ctx, &m)
	mount, ok := engineAt(ctx, r.c, m.Mount, &diags)
	if !ok {
		return diags
	}
	body, d := m.toAPI(ctx)
	if diags.Append(d...); diags.HasError() {
		return diags
	}
	p := rolePath(mount, m.Name.ValueString())
	if _, _, err := vaultWrite[struct{}](ctx, r.c, p, body); err != nil {
		return append(diags, vaultError(r.c, "writing "+p, err)...)
	}
	m.Mount = types.StringValue(mount)
	m.ID = types.StringValue(p)
	found, d := r.read(ctx, &m)
	if diags.Append(d...); diags.HasError() {
		return diags
	}
	if !found {
		diags.AddError("Role vanished", "the role at "+p+" was written but could not be read back")
		return diags
	}
	// Again after the write: the plan may not have seen the mount (created
	// in the same apply) or its final max_lease_ttl.
	warnAboveMountMax(ctx, r.c, mount, m, false, &diags)
	return append(diags, state.Set(ctx, &m)...)
}

// read refreshes m from Vault; found is false when the role is gone.
func (r *roleResource) read(ctx context.Context, m *roleModel) (bool, diag.Diagnostics) {
	p := rolePath(r.c.mountOr(m.Mount), m.Name.ValueString())
	role, found, diags := vaultRead[roleAPI](ctx, r.c, p)
	if !found {
		return false, diags
	}
	return true, append(diags, m.fromAPI(ctx, role, true)...)
}

func optFloat(v float64, prior types.Float64) types.Float64 {
	if v == 0 && prior.IsNull() {
		return types.Float64Null()
	}
	return types.Float64Value(v)
}

func optInt(v int64, prior types.Int64) types.Int64 {
	if v == 0 && prior.IsNull() {
		return types.Int64Null()
	}
	return types.Int64Value(v)
}

func (r *roleResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	resp.Diagnostics.Append(r.apply(ctx, req.Plan, &resp.State)...)
}

func (r *roleResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	resp.Diagnostics.Append(r.apply(ctx, req.Plan, &resp.State)...)
}

func (r *roleResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var m roleModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() || !ready(r.c, &resp.Diagnostics) {
		return
	}
	found, d := r.read(ctx, &m)
	if resp.Diagnostics.Append(d...); resp.Diagnostics.HasError() {
		return
	}
	if !found {
		tflog.Info(ctx, "role deleted outside Terraform: removing it from state, so the plan re-creates it", map[string]any{"role": m.ID.ValueString()})
		resp.State.RemoveResource(ctx)
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
		resp.Diagnostics.Append(vaultError(r.c, "deleting "+p, err)...)
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
