package vaultplugin

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

const (
	configStoragePath = "config"
	defaultRetention  = 30 * 24 * time.Hour
	pepperLen         = 32
)

// engineConfig is the mount's configuration. Pepper keys the hash that bearer
// keys are stored as; it is generated here and never leaves the engine.
type engineConfig struct {
	KeyPrefix    string        `json:"key_prefix"`
	DefaultTTL   time.Duration `json:"default_ttl"`
	MaxTTL       time.Duration `json:"max_ttl"`
	Scopes       []string      `json:"scopes"`
	Environments []string      `json:"environments"`
	SignedScopes []string      `json:"signed_scopes"`
	Retention    time.Duration `json:"retention"`
	Pepper       []byte        `json:"pepper"`

	// ticketKey keys the usage tickets verify hands out (derived from
	// the pepper, never stored); set by prepare.
	ticketKey *ticketKey
}

// prepare derives what the engine computes from the stored fields. Every
// configuration that is cached has been prepared.
func (c *engineConfig) prepare() {
	c.ticketKey = nil
	if len(c.Pepper) > 0 {
		c.ticketKey = deriveTicketKey(c.Pepper)
	}
}

func defaultConfig() *engineConfig {
	return &engineConfig{KeyPrefix: keyformat.DefaultPrefix, Retention: defaultRetention}
}

func pathConfig(b *backend) []*framework.Path {
	return []*framework.Path{{
		Pattern: "config",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: operationPrefix,
			OperationSuffix: "configuration",
		},
		Fields: map[string]*framework.FieldSchema{
			"key_prefix": {
				Type:        framework.TypeString,
				Default:     keyformat.DefaultPrefix,
				Description: "Prefix of every key issued by this mount, [a-z][a-z0-9]{1,7}. Fixed once keys exist.",
			},
			"default_ttl": {
				Type:        framework.TypeDurationSecond,
				Description: "Lease TTL for roles that set none. 0 uses the mount's default.",
			},
			"max_ttl": {
				Type:        framework.TypeDurationSecond,
				Description: "Upper bound on any key's lifetime in this mount. 0 uses the mount's max.",
			},
			"scopes": {
				Type:        framework.TypeCommaStringSlice,
				Description: "Scope catalog: roles and keys may only use these scopes. Empty allows any scope.",
			},
			"environments": {
				Type:        framework.TypeCommaStringSlice,
				Description: "Environments roles may name (e.g. dev,staging,prod). Empty allows any.",
			},
			"signed_scopes": {
				Type:        framework.TypeCommaStringSlice,
				Description: "Critical scopes (e.g. withdraw) that verify grants only to a request with a valid signature. A bearer role may not hold one: a write that would make a scope signed while bearer roles grant it is refused, naming those roles (change them first). Keys issued earlier that hold it keep it in their record, but verify refuses it to every unsigned request, creds and rotate never issue it to a bearer key, and local verifiers are told to drop their caches. Every role write is checked against the role it results in, so a bearer role left holding a signed scope (by an earlier build) can only be updated by a write that drops the scope or changes its key_type.",
			},
			"retention": {
				Type:        framework.TypeDurationSecond,
				Default:     int(defaultRetention / time.Second),
				Description: "How long records of revoked or expired keys are kept for audit, counted from each key's latest possible end (max_expires_at), before tidy drops them. At least 24h.",
			},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback:  b.pathConfigRead,
				Responses: okResponse("The engine's config (never the pepper).", configResponseFields),
				Summary:   "Read the engine configuration (the pepper is never returned).",
			},
			logical.UpdateOperation: &framework.PathOperation{
				Callback:  strict(b.pathConfigWrite),
				Responses: noContent("Config written."),
				Summary:   "Configure key prefix, TTL bounds, scope catalog and allowed environments.",
			},
			logical.CreateOperation: &framework.PathOperation{
				Callback:  strict(b.pathConfigWrite),
				Responses: noContent("Config written."),
				Summary:   "Configure key prefix, TTL bounds, scope catalog and allowed environments.",
			},
		},
		ExistenceCheck:  b.pathConfigExists,
		HelpSynopsis:    "Configure the cryptokeys engine.",
		HelpDescription: "Sets the prefix of issued keys, default and maximum TTLs, the scope catalog, the allowed environments and the critical scopes that need a signed request. Fields not given keep their value.",
	}}
}

func (b *backend) pathConfigExists(ctx context.Context, req *logical.Request, _ *framework.FieldData) (bool, error) {
	e, err := req.Storage.Get(ctx, configStoragePath)
	return e != nil, err
}

// getConfig returns the cached configuration, loading it on first use. It
// never writes, so verify may call it on any node.
func (b *backend) getConfig(ctx context.Context, s logical.Storage) (*engineConfig, error) {
	b.configMu.RLock()
	c := b.config
	b.configMu.RUnlock()
	if c != nil {
		return c, nil
	}
	b.configMu.Lock()
	defer b.configMu.Unlock()
	if b.config != nil {
		return b.config, nil
	}
	e, err := s.Get(ctx, configStoragePath)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	c = defaultConfig()
	if e != nil {
		if err := e.DecodeJSON(c); err != nil {
			return nil, fmt.Errorf("decoding config: %w", err)
		}
	}
	c.prepare()
	b.config = c
	return c, nil
}

func (b *backend) putConfig(ctx context.Context, s logical.Storage, c *engineConfig) error {
	e, err := logical.StorageEntryJSON(configStoragePath, c)
	if err != nil {
		return err
	}
	e.SealWrap = true
	if err := s.Put(ctx, e); err != nil {
		// The write may have landed: read storage again next time rather
		// than keep serving the old settings (signed_scopes among them).
		b.configMu.Lock()
		b.config = nil
		b.configMu.Unlock()
		return fmt.Errorf("writing config: %w", err)
	}
	c.prepare()
	b.configMu.Lock()
	b.config = c
	b.configMu.Unlock()
	return nil
}

// configForIssue returns the configuration with a pepper, creating and
// storing one if this is the first key the mount issues.
func (b *backend) configForIssue(ctx context.Context, s logical.Storage) (*engineConfig, error) {
	c, err := b.getConfig(ctx, s)
	if err != nil || len(c.Pepper) > 0 {
		return c, err
	}
	// First keys of a fresh mount may be issued concurrently from several
	// roles: only one pepper may ever be made, or keys hashed with a losing
	// one could never verify. Serialise with config writes and look again.
	b.configWriteMu.Lock()
	defer b.configWriteMu.Unlock()
	if c, err = b.getConfig(ctx, s); err != nil || len(c.Pepper) > 0 {
		return c, err
	}
	nc := *c
	if nc.Pepper, err = newPepper(); err != nil {
		return nil, err
	}
	return &nc, b.putConfig(ctx, s, &nc)
}

func newPepper() ([]byte, error) {
	p := make([]byte, pepperLen)
	if _, err := rand.Read(p); err != nil {
		return nil, fmt.Errorf("generating pepper: %w", err)
	}
	return p, nil
}

func (b *backend) pathConfigRead(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	c, err := b.getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]any{
		"key_prefix":    c.KeyPrefix,
		"default_ttl":   int64(c.DefaultTTL / time.Second),
		"max_ttl":       int64(c.MaxTTL / time.Second),
		"scopes":        nonNil(c.Scopes),
		"environments":  nonNil(c.Environments),
		"signed_scopes": nonNil(c.SignedScopes),
		"retention":     int64(c.Retention / time.Second),
	}}, nil
}

func (b *backend) pathConfigWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	// Config changes are rare; one lock for them keeps read-modify-write whole.
	b.configWriteMu.Lock()
	defer b.configWriteMu.Unlock()
	if _, ok := d.Raw["key_prefix"]; ok {
		b.prefixMu.Lock()
		defer b.prefixMu.Unlock()
	}

	old, err := b.getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	c := *old
	if err := b.applyConfig(ctx, req.Storage, &c, old, d); err != nil {
		return respond(err)
	}
	if len(c.Pepper) == 0 {
		if c.Pepper, err = newPepper(); err != nil {
			return nil, err
		}
	}
	if err := b.putConfig(ctx, req.Storage, &c); err != nil {
		return nil, err
	}
	// Local verifiers cache approvals of scopes; what is signed, or in the
	// catalog, may just have changed under them. The event follows the
	// write it describes; a write that names either field writes it again,
	// so retrying a write whose event failed heals it.
	_, signedNamed := d.Raw["signed_scopes"]
	_, catalogNamed := d.Raw["scopes"]
	if signedNamed || catalogNamed {
		if err := b.recordFlush(ctx, req.Storage); err != nil {
			return nil, fmt.Errorf("config was saved, but telling local verifiers to drop their caches failed (write config again to retry): %w", err)
		}
	}
	return nil, nil
}

func (b *backend) applyConfig(ctx context.Context, s logical.Storage, c, old *engineConfig, d *framework.FieldData) error {
	if v, ok := d.GetOk("key_prefix"); ok {
		p := v.(string)
		if !keyformat.ValidPrefix(p) {
			return badField("key_prefix", "%q must match [a-z][a-z0-9]{1,7}", printable(p))
		}
		if p != old.KeyPrefix {
			issued, err := s.List(ctx, keyStoragePrefix)
			if err != nil {
				return err
			}
			if len(issued) > 0 {
				return badField("key_prefix", "cannot change once keys have been issued: they would stop verifying (revoke and tidy them, or use a new mount)")
			}
		}
		c.KeyPrefix = p
	}
	for _, f := range []struct {
		name string
		dst  *time.Duration
	}{{"default_ttl", &c.DefaultTTL}, {"max_ttl", &c.MaxTTL}, {"retention", &c.Retention}} {
		if v, ok := d.GetOk(f.name); ok {
			dur := time.Duration(v.(int)) * time.Second
			if dur < 0 {
				return badField(f.name, "must not be negative")
			}
			*f.dst = dur
		}
	}
	if c.Retention < minRetention {
		return badField("retention", "(%s) must be at least %s: records are evidence (who revoked a key, when, why) and are kept until the key's latest possible end (max_expires_at) plus the retention", c.Retention, minRetention)
	}
	if c.MaxTTL > 0 && c.DefaultTTL > c.MaxTTL {
		return badField("default_ttl", "(%s) must not exceed max_ttl (%s)", c.DefaultTTL, c.MaxTTL)
	}
	if v, ok := d.GetOk("scopes"); ok {
		scopes, err := validateScopes("scopes", v.([]string), nil)
		if err != nil {
			return err
		}
		c.Scopes = scopes
	}
	if v, ok := d.GetOk("environments"); ok {
		envs := v.([]string)
		if len(envs) > wire.MaxEnvironments {
			return badField("environments", "at most %d environments", wire.MaxEnvironments)
		}
		for _, e := range envs {
			if !keyformat.ValidEnvironment(e) {
				return badField("environments", "%q must match [a-z][a-z0-9]{0,15}", printable(e))
			}
		}
		slices.Sort(envs)
		c.Environments = slices.Compact(envs)
	}
	if v, ok := d.GetOk("signed_scopes"); ok {
		scopes, err := validateScopes("signed_scopes", v.([]string), nil)
		if err != nil {
			return err
		}
		c.SignedScopes = scopes
		if err := b.checkNoBearerRoleHolds(ctx, s, scopes, old.SignedScopes); err != nil {
			return err
		}
	}
	if len(c.Scopes) > 0 {
		for _, s := range c.SignedScopes {
			if !slices.Contains(c.Scopes, s) {
				return badField("signed_scopes", "scope %q is not in the scope catalog (scopes: %s)", s, strings.Join(c.Scopes, ", "))
			}
		}
	}
	return nil
}

// checkNoBearerRoleHolds refuses to make a scope signed while a bearer
// role grants it: every later creds of that role would otherwise issue a
// bearer key holding a scope that only a signed request may use. Scopes
// that were signed already are not checked again (a role left holding one
// by an earlier build is reported on reads and fixed by its next write).
// The caller holds configWriteMu, which role writes take too, so no role
// write can slip in between this scan and the config write.
func (b *backend) checkNoBearerRoleHolds(ctx context.Context, s logical.Storage, signed, wasSigned []string) error {
	var added []string
	for _, sc := range signed {
		if !slices.Contains(wasSigned, sc) {
			added = append(added, sc)
		}
	}
	if len(added) == 0 {
		return nil
	}
	names, err := s.List(ctx, roleStoragePrefix)
	if err != nil {
		return err
	}
	var holders []string
	for _, name := range names {
		r, err := b.getRole(ctx, s, name)
		if err != nil {
			return err
		}
		if r == nil || r.KeyType != keyTypeBearer {
			continue
		}
		for _, sc := range added {
			if slices.Contains(r.Scopes, sc) {
				holders = append(holders, fmt.Sprintf("%s (%s)", name, sc))
				break
			}
		}
	}
	if len(holders) == 0 {
		return nil
	}
	const show = 10
	list := strings.Join(holders[:min(len(holders), show)], ", ")
	if len(holders) > show {
		list += fmt.Sprintf(" and %d more", len(holders)-show)
	}
	return badField("signed_scopes", "bearer roles grant a scope this write would make signed: %s; first drop the scope from those roles or change their key_type to hmac or ed25519", list)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
