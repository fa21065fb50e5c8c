package provider

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/vault/api"
)

// The engine's API models: what the provider sends to and reads from
// Vault, with the engine's JSON names, decoded once per reply (wire.Decode)
// into these structs and then turned into the Terraform models (the
// framework models beside each resource). Durations travel as seconds,
// recv_window as milliseconds, times as RFC 3339 strings. verify's shapes
// are wire's (wire.VerifyResponse); these are the management paths', which
// only the provider reads.

// roleAPI is a role: the reply of roles/<name> and the body of its write.
// A write sends every field, so an attribute removed from the
// configuration is cleared in Vault.
type roleAPI struct {
	Environment   string            `json:"environment"`
	Scopes        []string          `json:"scopes"`
	KeyType       string            `json:"key_type"`
	TTL           int64             `json:"ttl"`
	MaxTTL        int64             `json:"max_ttl"`
	AllowedCIDRs  []string          `json:"allowed_cidrs"`
	RateLimit     float64           `json:"rate_limit"`
	RateBurst     int64             `json:"rate_burst"`
	MaxActiveKeys int64             `json:"max_active_keys"`
	RecvWindow    int64             `json:"recv_window"`
	Labels        map[string]string `json:"labels"`
	Description   string            `json:"description"`
	OnAnomaly     string            `json:"on_anomaly"`
	AnomalyRate   float64           `json:"anomaly_rate"`
	FlagNewSource bool              `json:"flag_new_source"`
}

// credsRequest is the body of creds/<role>: only what the configuration
// sets, so the role's values apply to the rest.
type credsRequest struct {
	TTL          int64             `json:"ttl,omitempty"`
	Scopes       []string          `json:"scopes,omitempty"`
	AllowedCIDRs []string          `json:"allowed_cidrs,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	Name         string            `json:"name,omitempty"`
	PublicKey    string            `json:"public_key,omitempty"`
}

// credsAPI is an issued key: the data of creds/<role>'s leased secret.
type credsAPI struct {
	APIKey      string `json:"api_key"`
	KeyID       string `json:"key_id"`
	Environment string `json:"environment"`
	KeyType     string `json:"key_type"`
	ExpiresAt   string `json:"expires_at"`
	SecretKey   string `json:"secret_key"`
	PrivateKey  string `json:"private_key"`
	PublicKey   string `json:"public_key"`
}

// keyAPI is a key's metadata, keys/<key_id>: never its secret.
type keyAPI struct {
	KeyID        string            `json:"key_id"`
	Name         string            `json:"name"`
	Role         string            `json:"role"`
	Environment  string            `json:"environment"`
	Scopes       []string          `json:"scopes"`
	KeyType      string            `json:"key_type"`
	Labels       map[string]string `json:"labels"`
	Status       string            `json:"status"`
	CreatedAt    string            `json:"created_at"`
	CreatedBy    string            `json:"created_by"`
	ExpiresAt    string            `json:"expires_at"`
	RevokedAt    string            `json:"revoked_at"`
	RevokedBy    string            `json:"revoked_by"`
	RevokeReason string            `json:"revoke_reason"`
	LastUsedAt   string            `json:"last_used_at"`
	UseCount     int64             `json:"use_count"`
	PublicKey    string            `json:"public_key"`
}

// Key statuses the engine reports.
const (
	statusActive    = "active"
	statusSuspended = "suspended"
)

// live reports whether the engine still verifies the key (a suspended key
// is lifted by resume, not by a new key).
func (k keyAPI) live() bool { return k.Status == statusActive || k.Status == statusSuspended }

// keyListAPI is the reply of a LIST on keys/.
type keyListAPI struct {
	Keys []string `json:"keys"`
}

// configAPI is the engine's config, the reply of <mount>/config.
type configAPI struct {
	KeyPrefix    string   `json:"key_prefix"`
	DefaultTTL   int64    `json:"default_ttl"`
	MaxTTL       int64    `json:"max_ttl"`
	Retention    int64    `json:"retention"`
	Scopes       []string `json:"scopes"`
	Environments []string `json:"environments"`
	SignedScopes []string `json:"signed_scopes"`
}

// configWrite is the body of a config write: only what the configuration
// sets (nil is left out; an empty list is sent, as [], to clear one).
type configWrite struct {
	KeyPrefix    *string   `json:"key_prefix,omitempty"`
	DefaultTTL   *int64    `json:"default_ttl,omitempty"`
	MaxTTL       *int64    `json:"max_ttl,omitempty"`
	Retention    *int64    `json:"retention,omitempty"`
	Scopes       *[]string `json:"scopes,omitempty"`
	Environments *[]string `json:"environments,omitempty"`
	SignedScopes *[]string `json:"signed_scopes,omitempty"`
}

// infoAPI is what the provider checks of <mount>/info.
type infoAPI struct {
	Version   string `json:"version"`
	KeyFormat *struct {
		Pattern string `json:"pattern"`
	} `json:"key_format"`
	KeyTypes []string `json:"key_types"`
}

// vaultRead reads p and decodes its data into T. found is false when
// Vault has nothing there (a 404 or no data).
func vaultRead[T any](ctx context.Context, c *client, p string) (v T, found bool, diags diag.Diagnostics) {
	v, found, err := readJSON[T](ctx, c, p)
	if err != nil {
		return v, false, vaultError(c, "reading "+p, err)
	}
	return v, found, nil
}

// readJSON is vaultRead with the error returned as such.
func readJSON[T any](ctx context.Context, c *client, p string) (v T, found bool, err error) {
	s, err := c.vault.Logical().ReadWithContext(ctx, p)
	if err != nil || s == nil || s.Data == nil {
		return v, false, err
	}
	v, err = decode[T](s)
	return v, err == nil, err
}

// vaultWrite writes body (a struct of this file, encoded with its JSON
// names) to p and decodes the reply's data into T; the secret is returned
// for its lease. Errors are returned as such (vaultError reports them), so
// a caller can tell one answer from another first.
func vaultWrite[T any](ctx context.Context, c *client, p string, body any) (v T, s *api.Secret, err error) {
	b, err := json.Marshal(body)
	if err != nil {
		return v, nil, err
	}
	s, err = c.vault.Logical().WriteBytesWithContext(ctx, p, b)
	if err != nil || s == nil {
		return v, s, err
	}
	v, err = decode[T](s)
	return v, s, err
}

// replyShapeError is a reply whose data does not decode into its model.
type replyShapeError struct{ err error }

func (e *replyShapeError) Error() string { return e.err.Error() }
func (e *replyShapeError) Unwrap() error { return e.err }

// decode reads a reply's data into T, once.
func decode[T any](s *api.Secret) (T, error) {
	v, err := wire.Decode[T](s.Data)
	if err != nil {
		return v, &replyShapeError{err}
	}
	return v, nil
}

// errNoReply is a write that should have returned data and returned none.
var errNoReply = errors.New("the engine returned an empty response")
