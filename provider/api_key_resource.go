package provider

import (
	"context"
	"strings"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"

	"github.com/hashicorp/terraform-plugin-framework-timetypes/timetypes"
	"github.com/hashicorp/terraform-plugin-framework-validators/setvalidator"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/boolplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/mapplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/setplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"
)

var (
	_ resource.ResourceWithConfigure   = (*apiKeyResource)(nil)
	_ resource.ResourceWithModifyPlan  = (*apiKeyResource)(nil)
	_ resource.ResourceWithImportState = (*apiKeyResource)(nil)
)

func newAPIKeyResource() resource.Resource { return &apiKeyResource{} }

type apiKeyResource struct{ c *client }

type apiKeyModel struct {
	ID types.String `tfsdk:"id"`
	keyRequestAttrs
	AllowedCIDRs       types.Set            `tfsdk:"allowed_cidrs"`
	RotateBefore       timetypes.GoDuration `tfsdk:"rotate_before"`
	RotationTriggers   types.Map            `tfsdk:"rotation_triggers"`
	PublicKeyWO        types.String         `tfsdk:"public_key_wo"`
	PublicKeyWOVersion types.Int64          `tfsdk:"public_key_wo_version"`
	issuedKeyAttrs
	PublicKey        types.String `tfsdk:"public_key"`
	KeyType          types.String `tfsdk:"key_type"`
	ReadyForRotation types.Bool   `tfsdk:"ready_for_rotation"`
}

func (r *apiKeyResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_api_key"
}

func keep() []planmodifier.String {
	return []planmodifier.String{stringplanmodifier.UseStateForUnknown()}
}

func (r *apiKeyResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	replaceString := []planmodifier.String{stringplanmodifier.RequiresReplace()}
	resp.Schema = schema.Schema{
		Description: "An API key issued by the cryptokeys engine as a leased secret. Inside `rotate_before` of its expiry the plan replaces it (`-/+`; use `create_before_destroy` for overlap). A key revoked or expired outside Terraform is planned for re-creation; destroying revokes it. The key is stored in state (sensitive); use the ephemeral `cryptokeys_api_key` to keep it out of state. Import by `<key_id>` or `<mount>/<key_id>` (metadata only, never the secret).",
		Attributes: map[string]schema.Attribute{
			"id":    schema.StringAttribute{Computed: true, Description: "The key_id.", PlanModifiers: keep()},
			"mount": mountAttribute(),
			"role": schema.StringAttribute{
				Required: true, Description: "Role to issue the key from.",
				Validators: nameValidators(), PlanModifiers: replaceString,
			},
			"name": schema.StringAttribute{
				Optional: true, Description: "Label for the key, e.g. the customer or service using it.",
				Validators: keyNameValidators(), PlanModifiers: replaceString,
			},
			"ttl": schema.StringAttribute{
				CustomType: timetypes.GoDurationType{}, Optional: true,
				Description:   "Lease TTL, at most the role's max_ttl. Default: the role's ttl.",
				Validators:    []validator.String{durationAtLeast(time.Second)},
				PlanModifiers: durationModifiers(stringplanmodifier.RequiresReplace()),
			},
			"scopes": schema.SetAttribute{
				ElementType: types.StringType, Optional: true,
				Description:   "Narrow the key to these of the role's scopes.",
				Validators:    []validator.Set{setvalidator.ValueStringsAre(scopeValidator())},
				PlanModifiers: []planmodifier.Set{setplanmodifier.RequiresReplace()},
			},
			"allowed_cidrs": schema.SetAttribute{
				ElementType: types.StringType, Optional: true,
				Description:   "Narrow the key's source CIDRs (inside the role's).",
				Validators:    []validator.Set{setvalidator.ValueStringsAre(cidrValidator{})},
				PlanModifiers: []planmodifier.Set{setplanmodifier.RequiresReplace()},
			},
			"metadata": schema.MapAttribute{
				ElementType: types.StringType, Optional: true,
				Description:   "Key-value pairs added to the role's metadata for this key.",
				Validators:    metadataValidators(),
				PlanModifiers: []planmodifier.Map{mapplanmodifier.RequiresReplace()},
			},
			"rotate_before": schema.StringAttribute{
				CustomType: timetypes.GoDurationType{}, Optional: true,
				Description:   "Replace the key once its expiry is this close (e.g. \"168h\"). Unset: never rotate early.",
				Validators:    []validator.String{durationAtLeast(time.Second)},
				PlanModifiers: durationModifiers(),
			},
			"rotation_triggers": schema.MapAttribute{
				ElementType: types.StringType, Optional: true,
				Description:   "Arbitrary values; any change replaces the key (rotate on demand).",
				PlanModifiers: []planmodifier.Map{mapplanmodifier.RequiresReplace()},
			},
			"public_key_wo": schema.StringAttribute{
				Optional: true, WriteOnly: true, Sensitive: true,
				Description: "ed25519 roles: the client's public key (PEM), write-only so it can come from an ephemeral value. Needs Terraform 1.11. Change public_key_wo_version to send a new one.",
			},
			"public_key_wo_version": schema.Int64Attribute{
				Optional: true, Description: "Bump to issue a new key with the current public_key_wo.",
				PlanModifiers: []planmodifier.Int64{int64planmodifier.RequiresReplace()},
			},
			"key_id":      schema.StringAttribute{Computed: true, Description: "Public identifier of the key (safe to log).", PlanModifiers: keep()},
			"lease_id":    schema.StringAttribute{Computed: true, Sensitive: true, Description: "Vault lease of the key (sensitive: whoever holds it and may write `sys/leases/revoke/<lease_id>` or `sys/leases/renew/<lease_id>` can end or extend the key).", PlanModifiers: keep()},
			"api_key":     schema.StringAttribute{Computed: true, Sensitive: true, Description: "The API key.", PlanModifiers: keep()},
			"secret_key":  schema.StringAttribute{Computed: true, Sensitive: true, Description: "hmac keys: the request-signing secret.", PlanModifiers: keep()},
			"private_key": schema.StringAttribute{Computed: true, Sensitive: true, Description: "ed25519 keys generated by the engine: the private key (PKCS#8 PEM).", PlanModifiers: keep()},
			"public_key":  schema.StringAttribute{Computed: true, Description: "ed25519 keys: the public key the engine verifies with.", PlanModifiers: keep()},
			"environment": schema.StringAttribute{Computed: true, Description: "The key's environment (from its role).", PlanModifiers: keep()},
			"key_type":    schema.StringAttribute{Computed: true, Description: "bearer, hmac or ed25519.", PlanModifiers: keep()},
			"expires_at": schema.StringAttribute{
				CustomType: timetypes.RFC3339Type{}, Computed: true,
				Description: "When the key stops verifying.",
				// Only a new key changes it; without this, any in-place
				// edit (even "600s" for "10m") would plan a change here.
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"ready_for_rotation": schema.BoolAttribute{
				Computed:      true,
				Description:   "True once now is within rotate_before of expires_at: a refresh sets it and the plan then replaces the key. Usable in conditions and outputs (e.g. an alert that rotation is due).",
				PlanModifiers: []planmodifier.Bool{boolplanmodifier.UseStateForUnknown()},
			},
		},
	}
}

func (r *apiKeyResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.c = configuredClient(req.ProviderData, &resp.Diagnostics)
}

// inRotationWindow reports whether now is within rotateBefore of expiresAt.
func inRotationWindow(now time.Time, expiresAt timetypes.RFC3339, rotateBefore timetypes.GoDuration) bool {
	if expiresAt.IsNull() || expiresAt.IsUnknown() || rotateBefore.IsNull() || rotateBefore.IsUnknown() {
		return false
	}
	exp, d := expiresAt.ValueRFC3339Time()
	if d.HasError() {
		return false
	}
	before, d := rotateBefore.ValueGoDuration()
	if d.HasError() || before <= 0 {
		return false
	}
	return !now.Before(exp.Add(-before))
}

// ModifyPlan plans a replacement once the key is inside its rotation window,
// as terraform-provider-tls does for early certificate renewal: the plan
// shows -/+, so create_before_destroy and replace_triggered_by work.
//
// It runs for every key in every plan, so it reads only the attributes it
// decides on and writes ready_for_rotation only when that changes (a
// whole-model Get or Set costs the framework a reflection walk over every
// field).
func (r *apiKeyResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.State.Raw.IsNull() || req.Plan.Raw.IsNull() || r.c == nil {
		return
	}
	var (
		keyID        types.String
		expiresAt    timetypes.RFC3339
		rotateBefore timetypes.GoDuration
		planned      types.Bool
	)
	resp.Diagnostics.Append(req.State.GetAttribute(ctx, path.Root("key_id"), &keyID)...)
	resp.Diagnostics.Append(req.State.GetAttribute(ctx, path.Root("expires_at"), &expiresAt)...)
	resp.Diagnostics.Append(req.Plan.GetAttribute(ctx, path.Root("rotate_before"), &rotateBefore)...)
	resp.Diagnostics.Append(req.Plan.GetAttribute(ctx, path.Root("ready_for_rotation"), &planned)...)
	if resp.Diagnostics.HasError() {
		return
	}
	setPlanned := func(v types.Bool) {
		if !planned.Equal(v) {
			resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("ready_for_rotation"), v)...)
		}
	}
	if rotateBefore.IsUnknown() {
		setPlanned(types.BoolUnknown())
		return
	}
	now := r.c.now()
	if !inRotationWindow(now, expiresAt, rotateBefore) {
		// Set even when not due: a rotate_before edited to a shorter window
		// must plan false over a state that a refresh made true.
		setPlanned(types.BoolValue(false))
		return
	}
	tflog.Info(ctx, "key inside its rotation window: planning its replacement", map[string]any{
		"key_id": keyID.ValueString(), "expires_at": expiresAt.ValueString(),
		"rotate_before": rotateBefore.ValueString(), "now": now.UTC().Format(time.RFC3339),
	})
	// Unknown, not true: a refresh may already have stored true, and
	// Terraform replaces only for an attribute whose value changes.
	setPlanned(types.BoolUnknown())
	resp.RequiresReplace = append(resp.RequiresReplace, path.Root("ready_for_rotation"))
}

func (r *apiKeyResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var m apiKeyModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	// Write-only values are only in the configuration, never in the plan.
	var pub types.String
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("public_key_wo"), &pub)...)
	mount, ok := engineAt(ctx, r.c, m.Mount, &resp.Diagnostics)
	if !ok {
		return
	}
	body, d := m.keyRequestAttrs.toAPI(ctx)
	resp.Diagnostics.Append(d...)
	body.AllowedCIDRs = stringsOf(ctx, m.AllowedCIDRs, &resp.Diagnostics)
	body.PublicKey = pub.ValueString()
	if resp.Diagnostics.HasError() {
		return
	}
	k, s, err := issueKey(ctx, r.c, mount, m.Role.ValueString(), body)
	if err != nil {
		resp.Diagnostics.Append(vaultError(r.c, "issuing a key from "+mount+"/creds/"+m.Role.ValueString(), err)...)
		return
	}
	m.Mount = types.StringValue(mount)
	m.issuedKeyAttrs.fromAPI(k, s)
	m.ID = m.KeyID
	m.PublicKey = optString(k.PublicKey)
	m.KeyType = types.StringValue(k.KeyType)
	m.ReadyForRotation = types.BoolValue(false)
	m.PublicKeyWO = types.StringNull()
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *apiKeyResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var m apiKeyModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() || !ready(r.c, &resp.Diagnostics) {
		return
	}
	status, same, d := r.refresh(ctx, &m)
	if resp.Diagnostics.Append(d...); resp.Diagnostics.HasError() {
		return
	}
	if status != "" {
		// Revoked, expired or tidied away outside Terraform: drop it from
		// state so the plan issues a new one.
		tflog.Info(ctx, "key no longer verifies: removing it from state, so the plan issues a new one", map[string]any{
			"key_id": m.KeyID.ValueString(), "status": status,
		})
		resp.State.RemoveResource(ctx)
		return
	}
	// The response starts as the prior state: a key whose refresh changed
	// nothing (every key of a quiet plan) costs no whole-state Set.
	if same {
		return
	}
	tflog.Debug(ctx, "key changed outside Terraform: refreshing its state", map[string]any{"key_id": m.KeyID.ValueString()})
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

// refresh reads the key into m (which holds its state) and sets
// ready_for_rotation. gone is as read's; same reports a live key whose
// refresh changed nothing. Read and quietRead decide with it.
func (r *apiKeyResource) refresh(ctx context.Context, m *apiKeyModel) (gone string, same bool, diags diag.Diagnostics) {
	prior := *m
	status, diags := r.read(ctx, m)
	if diags.HasError() {
		return "", false, diags
	}
	// As terraform-provider-tls does for early renewal, the refreshed state
	// says rotation is due, so `plan -refresh-only` and outputs show it.
	m.ReadyForRotation = types.BoolValue(inRotationWindow(r.c.now(), m.ExpiresAt, m.RotateBefore))
	return status, status == "" && m.sameRefresh(prior), diags
}

// sameRefresh reports whether every attribute read sets is as in prior.
func (m apiKeyModel) sameRefresh(prior apiKeyModel) bool {
	return m.Mount.Equal(prior.Mount) && m.ID.Equal(prior.ID) && m.Role.Equal(prior.Role) &&
		m.Name.Equal(prior.Name) && m.Environment.Equal(prior.Environment) && m.KeyType.Equal(prior.KeyType) &&
		m.PublicKey.Equal(prior.PublicKey) && m.ExpiresAt.Equal(prior.ExpiresAt) && m.ReadyForRotation.Equal(prior.ReadyForRotation)
}

// read refreshes the key's metadata from keys/<key_id>. gone says why the
// key no longer verifies (its status, or "not found"), or is "" for a live
// key.
func (r *apiKeyResource) read(ctx context.Context, m *apiKeyModel) (gone string, diags diag.Diagnostics) {
	mount := r.c.mountOr(m.Mount)
	p := mount + "/keys/" + m.KeyID.ValueString()
	k, found, diags := vaultRead[keyAPI](ctx, r.c, p)
	if diags.HasError() {
		return "", diags
	}
	if !found {
		return "not found", diags
	}
	m.Mount = types.StringValue(mount)
	m.ID = m.KeyID
	m.Role = types.StringValue(k.Role)
	// The label is the only request field the record keeps apart; scopes
	// and metadata come back merged with the role's, so they stay as
	// configured rather than read into a diff.
	m.Name = optString(k.Name)
	m.Environment = types.StringValue(k.Environment)
	m.KeyType = types.StringValue(k.KeyType)
	m.PublicKey = optString(k.PublicKey)
	m.ExpiresAt = rfc3339(k.ExpiresAt)
	if !k.live() {
		return k.Status, diags
	}
	// The engine marks a key expired when it notices; the plan should not
	// wait for that.
	if exp, dd := m.ExpiresAt.ValueRFC3339Time(); !m.ExpiresAt.IsNull() && !dd.HasError() && !r.c.now().Before(exp) {
		return "expired", diags
	}
	return "", diags
}

// Update only sees rotate_before change: everything else replaces the key.
func (r *apiKeyResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var m apiKeyModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() || !ready(r.c, &resp.Diagnostics) {
		return
	}
	planned := m.ExpiresAt
	_, d := r.read(ctx, &m)
	resp.Diagnostics.Append(d...)
	// Keep what the plan promised; a lease renewed outside Terraform
	// shows at the next refresh instead of failing this apply.
	if !planned.IsUnknown() {
		m.ExpiresAt = planned
	}
	if m.ReadyForRotation.IsUnknown() {
		m.ReadyForRotation = types.BoolValue(inRotationWindow(r.c.now(), m.ExpiresAt, m.RotateBefore))
	}
	m.PublicKeyWO = types.StringNull()
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

// Delete revokes the lease (Vault then calls the engine's revoke) and the
// key itself, so verify refuses it at once. A key already gone is fine.
func (r *apiKeyResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var m apiKeyModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() || !ready(r.c, &resp.Diagnostics) {
		return
	}
	if lease := m.LeaseID.ValueString(); lease != "" {
		err := revokeLease(ctx, r.c.vault, lease)
		if err == nil {
			// Vault revokes synchronously through the engine: the key is
			// revoked, and a pipeline token needs no right on keys/*.
			return
		}
		if !isNotFound(err) && !isInvalidLease(err) {
			resp.Diagnostics.Append(vaultError(r.c, "revoking the lease of key "+m.KeyID.ValueString(), err)...)
			return
		}
	}
	// No lease (an imported key) or it is already gone: revoke the key itself.
	p := r.c.mountOr(m.Mount) + "/keys/" + m.KeyID.ValueString()
	if _, err := r.c.vault.Logical().DeleteWithDataWithContext(ctx, p, map[string][]string{"reason": {"destroyed by Terraform"}}); err != nil && !isNotFound(err) {
		resp.Diagnostics.Append(vaultError(r.c, "revoking "+p, err)...)
	}
}

func isInvalidLease(err error) bool {
	return err != nil && strings.Contains(err.Error(), "invalid lease")
}

func (r *apiKeyResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	id := strings.Trim(req.ID, "/")
	mount := ""
	if i := strings.LastIndex(id, "/"); i >= 0 {
		mount, id = id[:i], id[i+1:]
	}
	if !keyformat.ValidKeyID(id) {
		resp.Diagnostics.AddError("Invalid import ID", "want <key_id> or <mount>/<key_id>, where key_id is 12 base62 characters")
		return
	}
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), id)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("key_id"), id)...)
	if mount != "" {
		resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("mount"), mount)...)
	}
}
