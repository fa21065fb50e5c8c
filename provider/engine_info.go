package provider

import (
	"context"
	"fmt"
	"slices"

	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

// ready reports whether the provider was configured; resources and data
// sources call it first. Configure leaves the client unset while the
// provider block still has unknown values, and Terraform may still ask
// for a refresh then.
func ready(c *client, diags *diag.Diagnostics) bool {
	if c != nil {
		return true
	}
	diags.AddError("Provider not configured",
		"The cryptokeys provider has no Vault connection yet, usually because its configuration depends on values known only after apply. "+
			"Set address and token from values known at plan time, or apply the resources they depend on first (-target).")
	return false
}

// engineAt is the start of every request a resource or data source makes:
// the provider is configured, the mount is the one given (or the
// provider's), and the engine there has been checked. ok is false, with
// diags saying why, when the request must not go on.
func engineAt(ctx context.Context, c *client, mount types.String, diags *diag.Diagnostics) (string, bool) {
	if diags.HasError() || !ready(c, diags) {
		return "", false
	}
	m := c.mountOr(mount)
	return m, c.checkEngine(ctx, m, diags)
}

// checkEngine reads <mount>/info the first time a mount is used, so that a
// wrong mount path, a token that cannot reach it, or an engine with another
// key format is reported as such instead of as the failure of whatever
// request came first. It is not done in Configure: `terraform validate`
// and plans that only read state must work without Vault.
func (c *client) checkEngine(ctx context.Context, mount string, diags *diag.Diagnostics) bool {
	c.mu.Lock()
	done := c.checked[mount]
	c.mu.Unlock()
	if done {
		return true
	}
	p := mount + "/info"
	info, found, err := readJSON[infoAPI](ctx, c, p)
	if err != nil {
		diags.Append(vaultError(c, "checking the cryptokeys engine at "+mount+"/ (read "+p+")", err)...)
		return false
	}
	if !found {
		diags.AddError("No cryptokeys engine at "+mount+"/",
			fmt.Sprintf("Vault has nothing answering at %s. Enable the engine there (a cryptokeys_secrets_engine resource, or `vault secrets enable -path=%s %s`), "+
				"or point the provider's `mount` (or the resource's) at the path where it is enabled.", p, mount, PluginName))
		return false
	}
	if why := incompatible(info); why != "" {
		diags.AddError("Incompatible cryptokeys engine at "+mount+"/",
			fmt.Sprintf("The engine (version %q) %s. Upgrade the provider or the plugin so that they match.", info.Version, why))
		return false
	}
	c.mu.Lock()
	if c.checked == nil {
		c.checked = map[string]bool{}
	}
	c.checked[mount] = true
	c.mu.Unlock()
	return true
}

// incompatible says why an engine's info reply does not fit this provider,
// or "" when it does. The provider depends on the key format (parse_key,
// import by key_id) and on the key types its schema offers.
func incompatible(info infoAPI) string {
	if info.KeyFormat == nil {
		return "does not describe its key format"
	}
	if got := info.KeyFormat.Pattern; got != keyformat.Pattern {
		return fmt.Sprintf("issues keys matching %q, but this provider expects %q", got, keyformat.Pattern)
	}
	for _, t := range keyTypes {
		if !slices.Contains(info.KeyTypes, t) {
			return fmt.Sprintf("does not support key_type %q", t)
		}
	}
	return ""
}
