package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timetypes/timetypes"
	"github.com/hashicorp/terraform-plugin-framework-validators/setvalidator"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/ephemeral"
	"github.com/hashicorp/terraform-plugin-framework/ephemeral/schema"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/vault/api"
)

var (
	_ ephemeral.EphemeralResourceWithConfigure = (*apiKeyEphemeralResource)(nil)
	_ ephemeral.EphemeralResourceWithRenew     = (*apiKeyEphemeralResource)(nil)
	_ ephemeral.EphemeralResourceWithClose     = (*apiKeyEphemeralResource)(nil)
)

func newAPIKeyEphemeralResource() ephemeral.EphemeralResource { return &apiKeyEphemeralResource{} }

type apiKeyEphemeralResource struct{ c *client }

// apiKeyEphemeralModel shares the resource's request and issued-key
// attributes.
type apiKeyEphemeralModel struct {
	keyRequestAttrs
	RevokeOnClose types.Bool `tfsdk:"revoke_on_close"`
	issuedKeyAttrs
}

// leasePrivate is what Renew and Close get: they see no configuration,
// only this private data saved at Open.
type leasePrivate struct {
	LeaseID       string `json:"lease_id"`
	Mount         string `json:"mount"`
	Namespace     string `json:"namespace"`
	KeyID         string `json:"key_id"`
	LeaseSeconds  int    `json:"lease_seconds"`
	RevokeOnClose bool   `json:"revoke_on_close"`
}

const leasePrivateKey = "lease"

func (r *apiKeyEphemeralResource) Metadata(_ context.Context, req ephemeral.MetadataRequest, resp *ephemeral.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_api_key"
}

func (r *apiKeyEphemeralResource) Schema(_ context.Context, _ ephemeral.SchemaRequest, resp *ephemeral.SchemaResponse) {
	resp.Schema = schema.Schema{
		Description: "Issues a leased API key that is never written to plan or state (Terraform 1.10+). The lease is renewed while Terraform runs and revoked when it is done, unless revoke_on_close = false.",
		Attributes: map[string]schema.Attribute{
			"mount": schema.StringAttribute{Optional: true, Description: "Path of the cryptokeys engine. Default: the provider's mount."},
			"role": schema.StringAttribute{
				Required: true,
				Description: "Role to issue the key from: its name, or the `id` of a `cryptokeys_role` resource (`<mount>/roles/<name>`, which also gives the mount). " +
					"When the same configuration creates the role, use `role = cryptokeys_role.<name>.id`: the id is unknown until the role exists, so Terraform opens the key during apply, after creating the role, instead of during plan, when the role does not exist yet.",
				Validators: []validator.String{roleRefValidator{}},
			},
			"name":     schema.StringAttribute{Optional: true, Description: "Label for the key.", Validators: keyNameValidators()},
			"ttl":      schema.StringAttribute{CustomType: timetypes.GoDurationType{}, Optional: true, Description: "Lease TTL. Default: the role's.", Validators: []validator.String{durationAtLeast(time.Second)}},
			"scopes":   schema.SetAttribute{ElementType: types.StringType, Optional: true, Description: "Narrow the key's scopes.", Validators: []validator.Set{setvalidator.ValueStringsAre(scopeValidator())}},
			"metadata": schema.MapAttribute{ElementType: types.StringType, Optional: true, Description: "Extra key-value pairs for this key.", Validators: metadataValidators()},
			"revoke_on_close": schema.BoolAttribute{
				Optional:    true,
				Description: "Revoke the key when Terraform is done with it. Default true; set false to hand the key to something that outlives the run (it then lives until its lease ends).",
			},
			"key_id":      schema.StringAttribute{Computed: true, Description: "Public identifier of the key."},
			"lease_id":    schema.StringAttribute{Computed: true, Sensitive: true, Description: "Vault lease of the key (sensitive: whoever holds it and may write `sys/leases/revoke/<lease_id>` can end the key)."},
			"api_key":     schema.StringAttribute{Computed: true, Sensitive: true, Description: "The API key."},
			"secret_key":  schema.StringAttribute{Computed: true, Sensitive: true, Description: "hmac keys: the signing secret."},
			"private_key": schema.StringAttribute{Computed: true, Sensitive: true, Description: "ed25519 keys: the private key (PEM)."},
			"environment": schema.StringAttribute{Computed: true, Description: "The key's environment."},
			"expires_at":  schema.StringAttribute{CustomType: timetypes.RFC3339Type{}, Computed: true, Description: "When the lease ends unless renewed."},
		},
	}
}

func (r *apiKeyEphemeralResource) Configure(_ context.Context, req ephemeral.ConfigureRequest, resp *ephemeral.ConfigureResponse) {
	r.c = configuredClient(req.ProviderData, &resp.Diagnostics)
}

// renewAt schedules the next renewal halfway through the lease: Terraform
// may be slow to act on RenewAt (a busy CI runner), and the lease must not
// end before the renewal arrives.
func renewAt(now time.Time, leaseSeconds int) time.Time {
	return now.Add(time.Duration(leaseSeconds) * time.Second / 2)
}

func (r *apiKeyEphemeralResource) Open(ctx context.Context, req ephemeral.OpenRequest, resp *ephemeral.OpenResponse) {
	var m apiKeyEphemeralModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() || !ready(r.c, &resp.Diagnostics) {
		return
	}
	mount, role, err := splitRoleRef(m.Role.ValueString(), r.c.mountOr(m.Mount), m.Mount.ValueString())
	if err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("role"), "Invalid role", err.Error())
		return
	}
	if !r.c.checkEngine(ctx, mount, &resp.Diagnostics) {
		return
	}
	body, d := m.keyRequestAttrs.toAPI(ctx)
	if resp.Diagnostics.Append(d...); resp.Diagnostics.HasError() {
		return
	}
	k, s, err := issueKey(ctx, r.c, mount, role, body)
	if isMissingRole(err) {
		resp.Diagnostics.AddAttributeError(path.Root("role"), "Role does not exist", missingRoleDetail(mount, role, m.Role.ValueString()))
		return
	}
	if err != nil {
		resp.Diagnostics.Append(vaultError(r.c, "issuing a key from "+mount+"/creds/"+role, err)...)
		return
	}
	m.issuedKeyAttrs.fromAPI(k, s)
	resp.Diagnostics.Append(resp.Result.Set(ctx, &m)...)

	priv := leasePrivate{
		LeaseID: s.LeaseID, Mount: mount, Namespace: r.c.vault.Namespace(), KeyID: m.KeyID.ValueString(),
		LeaseSeconds: s.LeaseDuration, RevokeOnClose: m.RevokeOnClose.IsNull() || m.RevokeOnClose.ValueBool(),
	}
	resp.Diagnostics.Append(savePrivate(ctx, resp.Private, priv)...)
	if s.Renewable && s.LeaseDuration > 0 {
		resp.RenewAt = renewAt(r.c.now(), s.LeaseDuration)
	}
}

// splitRoleRef reads the role attribute: a role name (at mount), or a
// cryptokeys_role id "<mount>/roles/<name>", whose mount must then agree
// with the mount attribute when that is set.
func splitRoleRef(ref, mount, mountAttr string) (string, string, error) {
	i := strings.LastIndex(ref, "/roles/")
	if i < 0 {
		return mount, ref, nil
	}
	idMount, name := strings.Trim(ref[:i], "/"), ref[i+len("/roles/"):]
	if want := strings.Trim(mountAttr, "/"); want != "" && want != idMount {
		return "", "", fmt.Errorf("role %q is a role of the engine at %q, but mount is %q: drop mount, or make them agree", ref, idMount, want)
	}
	return idMount, name, nil
}

// roleRefValidator accepts a role name or a cryptokeys_role id.
type roleRefValidator struct{}

func (roleRefValidator) Description(context.Context) string {
	return "a role name, or a cryptokeys_role id <mount>/roles/<name>"
}

func (v roleRefValidator) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (roleRefValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	ref := req.ConfigValue.ValueString()
	name, idMount := ref, ""
	if i := strings.LastIndex(ref, "/roles/"); i >= 0 {
		idMount, name = strings.Trim(ref[:i], "/"), ref[i+len("/roles/"):]
		if idMount == "" {
			resp.Diagnostics.AddAttributeError(req.Path, "Invalid role", fmt.Sprintf("%q: a role id is <mount>/roles/<name>; the mount is missing", ref))
			return
		}
	}
	if !wire.ValidName(name) {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid role",
			fmt.Sprintf("%q: a role is its name (%s, at most %d) or a cryptokeys_role id, <mount>/roles/<name>", ref, wire.NameRule, wire.MaxNameLen))
	}
}

// isMissingRole tells the engine's answer to creds/<role> for a role it
// does not have (400 `role: "x" does not exist`).
func isMissingRole(err error) bool {
	var re *api.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusBadRequest {
		return false
	}
	for _, e := range re.Errors {
		if strings.HasPrefix(e, "role:") && strings.Contains(e, "does not exist") {
			return true
		}
	}
	return false
}

// missingRoleDetail names the fix for the commonest cause: a configuration
// that creates the role and opens a key for it by name, so Terraform opens
// the key during plan, before the role exists.
func missingRoleDetail(mount, role, ref string) string {
	msg := fmt.Sprintf("The engine at %q has no role %q, so no key could be issued.\n\n", mount, role)
	if ref != role {
		return msg + "The role id names a role that does not exist (any more): check that the cryptokeys_role resource was not deleted outside Terraform."
	}
	return msg + "If this configuration creates the role (resource \"cryptokeys_role\"), Terraform opened this ephemeral key during plan, before the role exists; depends_on does not change that. " +
		"Refer to the role by its id instead: role = cryptokeys_role.<name>.id (not .name). The id is unknown until the role is created, so Terraform opens the key during apply, after creating the role; the same configuration then works on the first and every later apply.\n\n" +
		"Otherwise check the role's name and the mount (`mount`, or the provider's)."
}

type privateData interface {
	GetKey(ctx context.Context, key string) ([]byte, diag.Diagnostics)
	SetKey(ctx context.Context, key string, value []byte) diag.Diagnostics
}

func savePrivate(ctx context.Context, p privateData, v leasePrivate) diag.Diagnostics {
	b, err := json.Marshal(v)
	if err != nil {
		var d diag.Diagnostics
		d.AddError("Saving lease data", err.Error())
		return d
	}
	return p.SetKey(ctx, leasePrivateKey, b)
}

func loadPrivate(ctx context.Context, p privateData) (leasePrivate, diag.Diagnostics) {
	var v leasePrivate
	b, d := p.GetKey(ctx, leasePrivateKey)
	if d.HasError() || len(b) == 0 {
		return v, d
	}
	if err := json.Unmarshal(b, &v); err != nil {
		d.AddError("Reading lease data", err.Error())
	}
	return v, d
}

// Renew extends the lease while Terraform still needs the key.
func (r *apiKeyEphemeralResource) Renew(ctx context.Context, req ephemeral.RenewRequest, resp *ephemeral.RenewResponse) {
	priv, d := loadPrivate(ctx, req.Private)
	resp.Diagnostics.Append(d...)
	if resp.Diagnostics.HasError() || priv.LeaseID == "" || !ready(r.c, &resp.Diagnostics) {
		return
	}
	v := r.c.vault.WithNamespace(priv.Namespace)
	s, err := renewLease(ctx, v, priv.LeaseID, priv.LeaseSeconds)
	if err != nil {
		resp.Diagnostics.Append(vaultError(r.c, "renewing lease of key "+priv.KeyID, err)...)
		return
	}
	if s != nil && s.LeaseDuration > 0 {
		resp.RenewAt = renewAt(r.c.now(), s.LeaseDuration)
	}
}

// Close revokes the key unless revoke_on_close = false.
func (r *apiKeyEphemeralResource) Close(ctx context.Context, req ephemeral.CloseRequest, resp *ephemeral.CloseResponse) {
	priv, d := loadPrivate(ctx, req.Private)
	resp.Diagnostics.Append(d...)
	if resp.Diagnostics.HasError() || priv.LeaseID == "" || !priv.RevokeOnClose || !ready(r.c, &resp.Diagnostics) {
		return
	}
	v := r.c.vault.WithNamespace(priv.Namespace)
	if err := revokeLease(ctx, v, priv.LeaseID); err != nil && !isNotFound(err) && !isInvalidLease(err) {
		resp.Diagnostics.Append(vaultError(r.c, "revoking lease of key "+priv.KeyID, err)...)
	}
}
