package provider

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
	"github.com/hashicorp/terraform-plugin-framework-timetypes/timetypes"
	"github.com/hashicorp/terraform-plugin-framework-validators/setvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/objectplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/setdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/setplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/vault/api"
)

// PluginName is the engine's name in Vault's plugin catalog.
const PluginName = "vault-plugin-secrets-cryptokeys"

var (
	_ resource.ResourceWithConfigure   = (*secretsEngineResource)(nil)
	_ resource.ResourceWithImportState = (*secretsEngineResource)(nil)
)

func newSecretsEngineResource() resource.Resource { return &secretsEngineResource{} }

type secretsEngineResource struct{ c *client }

type secretsEngineModel struct {
	ID            types.String `tfsdk:"id"`
	Path          types.String `tfsdk:"path"`
	PluginName    types.String `tfsdk:"plugin_name"`
	PluginVersion types.String `tfsdk:"plugin_version"`
	Description   types.String `tfsdk:"description"`
	Accessor      types.String `tfsdk:"accessor"`
	Config        types.Object `tfsdk:"config"`

	DefaultLeaseTTL          timetypes.GoDuration `tfsdk:"default_lease_ttl"`
	MaxLeaseTTL              timetypes.GoDuration `tfsdk:"max_lease_ttl"`
	AuditNonHMACRequestKeys  types.Set            `tfsdk:"audit_non_hmac_request_keys"`
	AuditNonHMACResponseKeys types.Set            `tfsdk:"audit_non_hmac_response_keys"`
}

type engineConfigModel struct {
	KeyPrefix    types.String         `tfsdk:"key_prefix"`
	DefaultTTL   timetypes.GoDuration `tfsdk:"default_ttl"`
	MaxTTL       timetypes.GoDuration `tfsdk:"max_ttl"`
	Scopes       types.Set            `tfsdk:"scopes"`
	Environments types.Set            `tfsdk:"environments"`
	SignedScopes types.Set            `tfsdk:"signed_scopes"`
	Retention    timetypes.GoDuration `tfsdk:"retention"`
}

func (r *secretsEngineResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_secrets_engine"
}

func (r *secretsEngineResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		Description: "Enables the cryptokeys plugin at a path and manages its configuration and the mount's tune settings that matter to it: lease TTLs (default_lease_ttl, max_lease_ttl) and which fields the audit log shows in clear (audit_non_hmac_request_keys / _response_keys). A change made outside Terraform (`vault secrets tune`) shows as drift in the next plan; a refresh that finds api_key, secret_key, private_key or text un-HMAC'd warns loudly, and the plan sets it back. The mount passes the X-Cryptokeys-Api-Key header through to the engine, for verify by GET. Destroying it disables the mount, which revokes every key issued there. Import by path.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{Computed: true, Description: "The mount path.", PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()}},
			"path": schema.StringAttribute{
				Optional: true, Computed: true,
				Default:       stringdefault.StaticString(DefaultMount),
				Description:   "Where to mount the engine. Default: cryptokeys.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
				Validators:    []validator.String{rule{wire.ValidName, "must be a single path segment: " + wire.NameRule}},
			},
			"plugin_name": schema.StringAttribute{
				Optional: true, Computed: true,
				Default:       stringdefault.StaticString(PluginName),
				Description:   "Catalog name the plugin was registered under.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"plugin_version": schema.StringAttribute{
				Optional:      true,
				Computed:      true,
				Description:   "Registered plugin version to run (e.g. v0.1.0). Changing it upgrades the mount in place (tune + reload). Default: the version Vault picks.",
				Validators:    []validator.String{stringvalidator.RegexMatches(versionRE, "must be a v-prefixed semantic version, e.g. v0.1.0")},
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"description": schema.StringAttribute{Optional: true, Description: "Mount description shown by `vault secrets list`."},
			"accessor":    schema.StringAttribute{Computed: true, Description: "The mount's accessor.", PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()}},
			"default_lease_ttl": schema.StringAttribute{
				CustomType: timetypes.GoDurationType{}, Optional: true, Computed: true,
				Description:   "The mount's default lease TTL (Vault's mount tune `default_lease_ttl`), a Go duration. Unset: the current value is kept (on a new mount, Vault's system default, 768h unless the server says otherwise).",
				Validators:    []validator.String{durationAtLeast(time.Second)},
				PlanModifiers: durationModifiers(stringplanmodifier.UseStateForUnknown()),
			},
			"max_lease_ttl": schema.StringAttribute{
				CustomType: timetypes.GoDurationType{}, Optional: true, Computed: true,
				Description:   "The mount's maximum lease TTL (mount tune `max_lease_ttl`): Vault caps every key's lease, renewals included, at this, whatever a role's max_ttl says. It replaces the server's max_lease_ttl (768h unless the server's config says otherwise) for this mount, so it may be longer. Unset: the current value is kept. cryptokeys_role warns about a ttl or max_ttl above it.",
				Validators:    []validator.String{durationAtLeast(time.Second)},
				PlanModifiers: durationModifiers(stringplanmodifier.UseStateForUnknown()),
			},
			"audit_non_hmac_request_keys": schema.SetAttribute{
				ElementType: types.StringType, Optional: true, Computed: true,
				Default:     setdefault.StaticValue(defaultAuditKeysValue()),
				Description: "Request fields Vault's audit devices write in clear instead of as an HMAC (mount tune `audit_non_hmac_request_keys`). Default [\"key_id\"]. api_key, secret_key, private_key and text are refused: they carry key material. A change made outside Terraform shows as drift, and a refresh warns loudly when it lists one of those.",
				Validators:  []validator.Set{noSecretAuditKeys{}},
			},
			"audit_non_hmac_response_keys": schema.SetAttribute{
				ElementType: types.StringType, Optional: true, Computed: true,
				Default:     setdefault.StaticValue(defaultAuditKeysValue()),
				Description: "Response fields written in clear in the audit log (mount tune `audit_non_hmac_response_keys`). Default [\"key_id\"]. api_key, secret_key, private_key and text are refused, as for audit_non_hmac_request_keys.",
				Validators:  []validator.Set{noSecretAuditKeys{}},
			},
			"config": schema.SingleNestedAttribute{
				Optional:      true,
				Computed:      true,
				Description:   "The engine's config. Unset attributes keep the engine's defaults.",
				PlanModifiers: []planmodifier.Object{objectplanmodifier.UseStateForUnknown()},
				Attributes: map[string]schema.Attribute{
					"key_prefix": schema.StringAttribute{
						Optional: true, Computed: true,
						Description:   "Prefix of issued keys, [a-z][a-z0-9]{1,7}. Default ck. Fixed once keys exist.",
						Validators:    []validator.String{prefixValidator()},
						PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
					},
					"default_ttl": schema.StringAttribute{CustomType: timetypes.GoDurationType{}, Optional: true, Computed: true, Validators: []validator.String{durationAtLeast(0)}, Description: "TTL for roles that set none.", PlanModifiers: keepUnsetDuration()},
					"max_ttl":     schema.StringAttribute{CustomType: timetypes.GoDurationType{}, Optional: true, Computed: true, Validators: []validator.String{durationAtLeast(0)}, Description: "Upper bound on every key's lifetime.", PlanModifiers: keepUnsetDuration()},
					"scopes": schema.SetAttribute{ElementType: types.StringType, Optional: true, Computed: true, Description: "Scope catalog; empty allows any.",
						Validators: []validator.Set{setvalidator.ValueStringsAre(scopeValidator()), setvalidator.SizeAtMost(wire.MaxScopes)}, PlanModifiers: keepUnsetSet()},
					"environments": schema.SetAttribute{ElementType: types.StringType, Optional: true, Computed: true, Description: "Allowed environments; empty allows any.",
						Validators: []validator.Set{setvalidator.ValueStringsAre(environmentValidator()), setvalidator.SizeAtMost(wire.MaxEnvironments)}, PlanModifiers: keepUnsetSet()},
					"signed_scopes": schema.SetAttribute{ElementType: types.StringType, Optional: true, Computed: true, Description: "Scopes granted only to signed requests.",
						Validators: []validator.Set{setvalidator.ValueStringsAre(scopeValidator())}, PlanModifiers: keepUnsetSet()},
					"retention": schema.StringAttribute{CustomType: timetypes.GoDurationType{}, Optional: true, Computed: true, Validators: []validator.String{durationAtLeast(0)}, Description: "How long records of ended keys are kept. Default 720h.", PlanModifiers: keepUnsetDuration()},
				},
			},
		},
	}
}

// keepUnsetDuration and keepUnsetSet are the config attributes' plan
// modifiers: an attribute the configuration leaves out keeps its current
// value (the framework would plan it unknown whenever any other config
// attribute is respelled or changed, and so plan a change forever for a
// duration written "43200m" over a state of "720h"), and a duration
// written differently but as long is no change.
func keepUnsetDuration() []planmodifier.String {
	return durationModifiers(stringplanmodifier.UseStateForUnknown())
}

func keepUnsetSet() []planmodifier.Set {
	return []planmodifier.Set{setplanmodifier.UseStateForUnknown()}
}

func (r *secretsEngineResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.c = configuredClient(req.ProviderData, &resp.Diagnostics)
}

var engineConfigTypes = map[string]attrType{
	"key_prefix": types.StringType, "default_ttl": timetypes.GoDurationType{}, "max_ttl": timetypes.GoDurationType{},
	"scopes": types.SetType{ElemType: types.StringType}, "environments": types.SetType{ElemType: types.StringType},
	"signed_scopes": types.SetType{ElemType: types.StringType}, "retention": timetypes.GoDurationType{},
}

func (r *secretsEngineResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var m secretsEngineModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() || !ready(r.c, &resp.Diagnostics) {
		return
	}
	p := m.Path.ValueString()
	in := &api.MountInput{
		Type:        m.PluginName.ValueString(),
		Description: m.Description.ValueString(),
		// key_id is the public handle auditors follow through a key's
		// life; everything else in audit logs stays HMAC'd. The engine's
		// verify read takes the key from a header, which Vault hands a
		// plugin only when its mount lists it.
		Config: api.MountConfigInput{
			AuditNonHMACRequestKeys:   auditKeys(ctx, m.AuditNonHMACRequestKeys, &resp.Diagnostics),
			AuditNonHMACResponseKeys:  auditKeys(ctx, m.AuditNonHMACResponseKeys, &resp.Diagnostics),
			PassthroughRequestHeaders: []string{wire.VerifyHeader},
		},
	}
	if v := m.PluginVersion.ValueString(); v != "" {
		in.Config.PluginVersion = v
	}
	if s, ok := seconds(m.DefaultLeaseTTL, &resp.Diagnostics); ok {
		in.Config.DefaultLeaseTTL = fmt.Sprintf("%ds", s)
	}
	if s, ok := seconds(m.MaxLeaseTTL, &resp.Diagnostics); ok {
		in.Config.MaxLeaseTTL = fmt.Sprintf("%ds", s)
	}
	if resp.Diagnostics.HasError() {
		return
	}
	if err := r.c.vault.Sys().MountWithContext(ctx, p, in); err != nil {
		resp.Diagnostics.Append(vaultError(r.c, "enabling the "+m.PluginName.ValueString()+" plugin at "+p+" (is it registered in the plugin catalog?)", err)...)
		return
	}
	// From here the mount exists: record it even if config fails, so
	// Terraform can retry or destroy it.
	m.ID = types.StringValue(p)
	// A plugin registered under this name that is not (this version of)
	// the engine fails here, not at the first role.
	if r.c.checkEngine(ctx, p, &resp.Diagnostics) {
		r.writeConfig(ctx, &m, &resp.Diagnostics)
	}
	r.read(ctx, &m, &resp.Diagnostics)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *secretsEngineResource) writeConfig(ctx context.Context, m *secretsEngineModel, diags *diag.Diagnostics) {
	if m.Config.IsNull() || m.Config.IsUnknown() {
		return
	}
	var cm engineConfigModel
	diags.Append(m.Config.As(ctx, &cm, objectAsOptions)...)
	if diags.HasError() {
		return
	}
	var body configWrite
	if v := cm.KeyPrefix; !v.IsNull() && !v.IsUnknown() {
		body.KeyPrefix = v.ValueStringPointer()
	}
	for _, d := range []struct {
		v   timetypes.GoDuration
		dst **int64
	}{{cm.DefaultTTL, &body.DefaultTTL}, {cm.MaxTTL, &body.MaxTTL}, {cm.Retention, &body.Retention}} {
		if s, ok := seconds(d.v, diags); ok {
			*d.dst = &s
		}
	}
	for _, l := range []struct {
		v   types.Set
		dst **[]string
	}{{cm.Scopes, &body.Scopes}, {cm.Environments, &body.Environments}, {cm.SignedScopes, &body.SignedScopes}} {
		if !l.v.IsNull() && !l.v.IsUnknown() {
			v := nonNil(stringsOf(ctx, l.v, diags))
			*l.dst = &v
		}
	}
	if body == (configWrite{}) || diags.HasError() {
		return
	}
	p := m.Path.ValueString() + "/config"
	if _, _, err := vaultWrite[struct{}](ctx, r.c, p, body); err != nil {
		diags.Append(vaultError(r.c, "writing "+p, err)...)
	}
}

// read refreshes the mount and its config; false when the mount is gone.
func (r *secretsEngineResource) read(ctx context.Context, m *secretsEngineModel, diags *diag.Diagnostics) bool {
	p := m.Path.ValueString()
	mounts, err := r.c.vault.Sys().ListMountsWithContext(ctx)
	if err != nil {
		diags.Append(vaultError(r.c, "listing secrets engines", err)...)
		return false
	}
	mo, ok := mounts[p+"/"]
	if !ok {
		return false
	}
	m.ID = types.StringValue(p)
	m.PluginName = types.StringValue(mo.Type)
	m.Accessor = types.StringValue(mo.Accessor)
	if v := mo.RunningVersion; v != "" {
		m.PluginVersion = types.StringValue(v)
	} else {
		m.PluginVersion = types.StringValue(mo.PluginVersion)
	}
	if mo.Description != "" || !m.Description.IsNull() {
		m.Description = types.StringValue(mo.Description)
	}
	var td diag.Diagnostics
	r.readTune(ctx, m, &td)
	diags.Append(td...)
	if td.HasError() {
		return true
	}
	c, found, d := vaultRead[configAPI](ctx, r.c, p+"/config")
	if diags.Append(d...); !found {
		return true
	}
	var prior engineConfigModel
	if !m.Config.IsNull() && !m.Config.IsUnknown() {
		diags.Append(m.Config.As(ctx, &prior, objectAsOptions)...)
	}
	cm := engineConfigModel{
		KeyPrefix:    types.StringValue(c.KeyPrefix),
		DefaultTTL:   durationValue(float64(c.DefaultTTL), nonNullDuration(prior.DefaultTTL)),
		MaxTTL:       durationValue(float64(c.MaxTTL), nonNullDuration(prior.MaxTTL)),
		Scopes:       setValue(ctx, nonNil(sortedCopy(c.Scopes)), emptySet, diags),
		Environments: setValue(ctx, nonNil(sortedCopy(c.Environments)), emptySet, diags),
		SignedScopes: setValue(ctx, nonNil(sortedCopy(c.SignedScopes)), emptySet, diags),
		Retention:    durationValue(float64(c.Retention), nonNullDuration(prior.Retention)),
	}
	obj, dd := types.ObjectValueFrom(ctx, engineConfigTypes, cm)
	diags.Append(dd...)
	m.Config = obj
	return true
}

// readTune refreshes what the resource manages of the mount's tune
// settings. The TTLs are the mount's effective ones (Vault's system values
// where the mount sets none), so the real limit is what state shows.
func (r *secretsEngineResource) readTune(ctx context.Context, m *secretsEngineModel, diags *diag.Diagnostics) {
	p := m.Path.ValueString()
	t, err := r.c.vault.Sys().MountConfigWithContext(ctx, p)
	if err != nil {
		diags.Append(vaultError(r.c, "reading sys/mounts/"+p+"/tune", err)...)
		return
	}
	m.DefaultLeaseTTL = durationValue(float64(t.DefaultLeaseTTL), nonNullDuration(m.DefaultLeaseTTL))
	m.MaxLeaseTTL = durationValue(float64(t.MaxLeaseTTL), nonNullDuration(m.MaxLeaseTTL))
	m.AuditNonHMACRequestKeys = setValue(ctx, sortedCopy(t.AuditNonHMACRequestKeys), types.SetValueMust(types.StringType, nil), diags)
	m.AuditNonHMACResponseKeys = setValue(ctx, sortedCopy(t.AuditNonHMACResponseKeys), types.SetValueMust(types.StringType, nil), diags)
	warnSecretAuditKeys(p, "audit_non_hmac_request_keys", t.AuditNonHMACRequestKeys, diags)
	warnSecretAuditKeys(p, "audit_non_hmac_response_keys", t.AuditNonHMACResponseKeys, diags)
}

func sortedCopy(ss []string) []string {
	out := slices.Clone(ss)
	sort.Strings(out)
	return out
}

// auditKeys is a planned audit_non_hmac_* set for the mount input; an
// unknown or null set sends none.
func auditKeys(ctx context.Context, s types.Set, diags *diag.Diagnostics) []string {
	return stringsOf(ctx, s, diags)
}

// nonNullDuration makes durationValue render zero as "0s" instead of null:
// config attributes are computed, so they always have a value.
func nonNullDuration(d timetypes.GoDuration) timetypes.GoDuration {
	if d.IsNull() || d.IsUnknown() {
		return timetypes.NewGoDurationValueFromStringMust("0s")
	}
	return d
}

func (r *secretsEngineResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var m secretsEngineModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() || !ready(r.c, &resp.Diagnostics) {
		return
	}
	if !r.read(ctx, &m, &resp.Diagnostics) {
		if !resp.Diagnostics.HasError() {
			resp.State.RemoveResource(ctx)
		}
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *secretsEngineResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var m, prior secretsEngineModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &prior)...)
	if resp.Diagnostics.HasError() || !ready(r.c, &resp.Diagnostics) {
		return
	}
	p := m.Path.ValueString()
	// Only the fields set here are sent, so tuning leaves the rest as is.
	tune := api.TuneMountConfigInput{}
	changed := false
	if v := m.PluginVersion.ValueString(); v != "" && v != prior.PluginVersion.ValueString() {
		tune.PluginVersion, changed = &v, true
	}
	if !m.Description.Equal(prior.Description) {
		d := m.Description.ValueString()
		tune.Description, changed = &d, true
	}
	for _, ttl := range []struct {
		planned, prior timetypes.GoDuration
		field          **string
	}{{m.DefaultLeaseTTL, prior.DefaultLeaseTTL, &tune.DefaultLeaseTTL}, {m.MaxLeaseTTL, prior.MaxLeaseTTL, &tune.MaxLeaseTTL}} {
		if s, ok := seconds(ttl.planned, &resp.Diagnostics); ok && !sameSeconds(ttl.planned, ttl.prior) {
			v := fmt.Sprintf("%ds", s)
			*ttl.field, changed = &v, true
		}
	}
	// Sent whenever planned, not only when the plan changed them: a value
	// tuned outside Terraform shows in state, so the planned set is the one
	// to restore.
	for _, keys := range []struct {
		planned, prior types.Set
		field          **[]string
	}{{m.AuditNonHMACRequestKeys, prior.AuditNonHMACRequestKeys, &tune.AuditNonHMACRequestKeys}, {m.AuditNonHMACResponseKeys, prior.AuditNonHMACResponseKeys, &tune.AuditNonHMACResponseKeys}} {
		if keys.planned.IsNull() || keys.planned.IsUnknown() || keys.planned.Equal(keys.prior) {
			continue
		}
		v := nonNil(stringsOf(ctx, keys.planned, &resp.Diagnostics))
		*keys.field, changed = &v, true
	}
	if resp.Diagnostics.HasError() {
		return
	}
	if changed {
		if err := r.c.vault.Sys().TuneMountAllowNilWithContext(ctx, p, tune); err != nil {
			resp.Diagnostics.Append(vaultError(r.c, "tuning "+p, err)...)
			return
		}
		if tune.PluginVersion != nil {
			// A new version runs only once the mount is reloaded.
			if _, err := r.c.vault.Sys().ReloadPluginWithContext(ctx, &api.ReloadPluginInput{Mounts: []string{p}}); err != nil {
				resp.Diagnostics.Append(vaultError(r.c, "reloading the plugin at "+p, err)...)
				return
			}
		}
	}
	r.writeConfig(ctx, &m, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	r.read(ctx, &m, &resp.Diagnostics)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *secretsEngineResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var m secretsEngineModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() || !ready(r.c, &resp.Diagnostics) {
		return
	}
	if err := r.c.vault.Sys().UnmountWithContext(ctx, m.Path.ValueString()); err != nil && !isNotFound(err) {
		resp.Diagnostics.Append(vaultError(r.c, "disabling "+m.Path.ValueString(), err)...)
	}
}

func (r *secretsEngineResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	p := strings.Trim(req.ID, "/")
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), p)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("path"), p)...)
}
