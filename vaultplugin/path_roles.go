package vaultplugin

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/jsonutil"
	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"
)

const (
	roleStoragePrefix = "roles/"
	// roleCacheSize bounds b.roles; a mount with more roles than this
	// reads the rest from storage.
	roleCacheSize = 10_000

	keyTypeBearer  = "bearer"
	keyTypeHMAC    = "hmac"
	keyTypeEd25519 = "ed25519"

	defaultRecvWindow = 5 * time.Second
	maxRecvWindow     = 60 * time.Second
	maxRateLimit      = 1e6
	maxActiveKeysCap  = 1_000_000
)

var keyTypes = []string{keyTypeBearer, keyTypeHMAC, keyTypeEd25519}

// role is a template for keys. Issued keys copy the role's policy (scopes,
// environment, CIDRs, limits) so that verify needs only the key's own record
// and a deleted role cannot strand or widen its keys.
type role struct {
	Environment   string            `json:"environment"`
	Scopes        []string          `json:"scopes"`
	KeyType       string            `json:"key_type"`
	TTL           time.Duration     `json:"ttl"`
	MaxTTL        time.Duration     `json:"max_ttl"`
	AllowedCIDRs  []string          `json:"allowed_cidrs"`
	RateLimit     float64           `json:"rate_limit"`
	RateBurst     int               `json:"rate_burst"`
	MaxActiveKeys int               `json:"max_active_keys"`
	RecvWindow    time.Duration     `json:"recv_window"`
	Labels        map[string]string `json:"metadata"` // stored under its first name
	Description   string            `json:"description"`
	OnAnomaly     string            `json:"on_anomaly"`
	AnomalyRate   float64           `json:"anomaly_rate"`
	FlagNewSource bool              `json:"flag_new_source"`
}

func roleFields() map[string]*framework.FieldSchema {
	return map[string]*framework.FieldSchema{
		"name": {
			Type:        framework.TypeString,
			Description: "Name of the role (letters, digits, '_', '-', '.'; at most 64).",
			Required:    true,
		},
		"environment": {
			Type:        framework.TypeString,
			Description: "Environment of the role's keys, [a-z][a-z0-9]{0,15} (dev, staging, prod...). Required. A key verifies only in its own environment.",
		},
		"scopes": {
			Type:        framework.TypeCommaStringSlice,
			Description: "Scopes the role's keys carry (e.g. read,trade); none if empty. Must be in the mount's scope catalog if one is configured. A bearer role may not hold a scope of config signed_scopes; every write is checked against the role it results in.",
		},
		"key_type": {
			Type:          framework.TypeString,
			Default:       keyTypeBearer,
			AllowedValues: []any{keyTypeBearer, keyTypeHMAC, keyTypeEd25519},
			Description:   "bearer (the key alone authenticates), hmac (requests are signed with a secret_key) or ed25519 (requests are signed with a private key).",
		},
		"ttl": {
			Type:        framework.TypeDurationSecond,
			Description: "Lease TTL of issued keys. 0 uses the mount config's default_ttl, then Vault's.",
		},
		"max_ttl": {
			Type:        framework.TypeDurationSecond,
			Description: "Longest a key may live, renewals included. 0 uses the mount config's max_ttl, then Vault's.",
		},
		"allowed_cidrs": {
			Type:        framework.TypeCommaStringSlice,
			Description: "Source CIDR blocks keys may be used from (verify checks source_ip). Empty allows any source.",
		},
		"rate_limit": {
			Type:        framework.TypeFloat,
			Description: "Requests per second each key may make (token bucket in verify). 0 is unlimited.",
		},
		"rate_burst": {
			Type:        framework.TypeInt,
			Description: "Bucket size for rate_limit. 0 means ceil(rate_limit).",
		},
		"max_active_keys": {
			Type:        framework.TypeInt,
			Description: "Most live (unrevoked, unexpired) keys the role may have at once. 0 is unlimited.",
		},
		"recv_window": {
			Type:        framework.TypeString,
			Description: "How far a signed request's timestamp may be from now: milliseconds (5000) or a duration (5s). Default 5000, max 60000.",
		},
		"labels": {
			Type:        framework.TypeKVPairs,
			Description: "Key-value pairs copied onto every key of the role and returned by verify (e.g. customer=acme).",
		},
		"description": {
			Type:        framework.TypeString,
			Description: "Human-readable description of the role.",
		},
		"on_anomaly": {
			Type:          framework.TypeString,
			Default:       anomalyNone,
			AllowedValues: []any{anomalyNone, anomalyFlag, anomalySuspend},
			Description:   "What verify does when a key behaves anomalously: none, flag (record and log it) or suspend (refuse it with SUSPENDED until keys/<key_id>/resume).",
		},
		"anomaly_rate": {
			Type:        framework.TypeFloat,
			Description: "Sustained requests per second (over 10 s) above which a key is anomalous. 0 disables the check.",
		},
		"flag_new_source": {
			Type:        framework.TypeBool,
			Description: "Treat a request from a source IP the key has never used as an anomaly.",
		},
	}
}

func pathRoles(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "roles/?$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix,
				OperationSuffix: "roles",
				Navigation:      true,
				ItemType:        "Role",
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{
					Callback:  b.pathRoleList,
					Responses: listed("Role names.", ""),
					Summary:   "List roles.",
				},
			},
			HelpSynopsis:    "List the roles of this mount.",
			HelpDescription: "Lists role names. Read roles/<name> for a role's fields.",
		},
		{
			Pattern: "roles/" + framework.MatchAllRegex("name"),
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix,
				OperationSuffix: "role",
				ItemType:        "Role",
			},
			Fields:         roleFields(),
			ExistenceCheck: b.pathRoleExists,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback:  b.pathRoleRead,
					Responses: okResponse("The role.", roleResponseFields),
					Summary:   "Read a role.",
				},
				logical.CreateOperation: &framework.PathOperation{
					Callback:  strict(b.pathRoleWrite),
					Responses: noContent("Role written (with warnings when a TTL exceeds what Vault allows)."),
					Summary:   "Create a role.",
				},
				logical.UpdateOperation: &framework.PathOperation{
					Callback:  strict(b.pathRoleWrite),
					Responses: noContent("Role written (with warnings when a TTL exceeds what Vault allows)."),
					Summary:   "Update a role; fields not given keep their value.",
				},
				logical.DeleteOperation: &framework.PathOperation{
					Callback:  b.pathRoleDelete,
					Responses: noContent("Role deleted; its keys stay valid."),
					Summary:   "Delete a role. Its keys stay valid until they expire or are revoked.",
				},
			},
			HelpSynopsis: "Manage the roles keys are issued from.",
			HelpDescription: `A role fixes the environment, scopes, key type, TTLs, source CIDRs and
limits of the keys issued from it (creds/<role>). Keys copy the role's policy
when issued: later role changes apply to new keys, and deleting a role leaves
its keys valid until they expire or are revoked.`,
		},
	}
}

// getRole reads a role through b.roles. The cache holds roles as decoded
// from storage and never changed; every caller gets its own copy (clone),
// so a role write that fails half-way through applying its fields cannot
// leave a half-changed role behind in memory. (The cache held the stored
// JSON, decoded on every issue, before: a tenth of the plugin's CPU on
// creds.)
func (b *backend) getRole(ctx context.Context, s logical.Storage, name string) (*role, error) {
	r, found, err := b.roles.through(name, func() (*role, bool, error) {
		e, err := s.Get(ctx, roleStoragePrefix+name)
		if err != nil || e == nil {
			return nil, false, err
		}
		r, err := decodeRole(e.Value)
		return r, err == nil, err
	})
	if err != nil || !found {
		return nil, err
	}
	return r.clone(), nil
}

func decodeRole(raw []byte) (*role, error) {
	r := new(role)
	if err := jsonutil.DecodeJSON(raw, r); err != nil {
		return nil, fmt.Errorf("decoding role: %w", err)
	}
	return r, nil
}

// clone is a copy of r that shares no memory with it: every slice and map
// is copied (nil stays nil, empty stays empty, as decoding gives them).
func (r *role) clone() *role {
	c := *r
	c.Scopes = slices.Clone(r.Scopes)
	c.AllowedCIDRs = slices.Clone(r.AllowedCIDRs)
	c.Labels = maps.Clone(r.Labels)
	return &c
}

func (b *backend) pathRoleExists(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	name := d.Get("name").(string)
	if validateName("name", name) != nil {
		// Let the write path report the bad name.
		return false, nil
	}
	r, err := b.getRole(ctx, req.Storage, name)
	return r != nil, err
}

func (b *backend) pathRoleList(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	names, err := req.Storage.List(ctx, roleStoragePrefix)
	if err != nil {
		return nil, err
	}
	return logical.ListResponse(names), nil
}

func (b *backend) pathRoleRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	if err := validateName("name", name); err != nil {
		return respond(err)
	}
	r, err := b.getRole(ctx, req.Storage, name)
	if err != nil || r == nil {
		return nil, err
	}
	resp := &logical.Response{Data: r.toResponse(name)}
	cfg, err := b.getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	if s := r.signedScopeOfBearer(cfg); s != "" {
		resp.AddWarning(fmt.Sprintf("scope %q is in config signed_scopes but this is a bearer role: creds refuses to issue it (request scopes without it), verify refuses it to unsigned requests, and the next write to this role must drop it or change key_type", s))
	}
	return resp, nil
}

func (r *role) toResponse(name string) map[string]any {
	md := r.Labels
	if md == nil {
		md = map[string]string{}
	}
	return map[string]any{
		"name":            name,
		"environment":     r.Environment,
		"scopes":          nonNil(r.Scopes),
		"key_type":        r.KeyType,
		"ttl":             int64(r.TTL / time.Second),
		"max_ttl":         int64(r.MaxTTL / time.Second),
		"allowed_cidrs":   nonNil(r.AllowedCIDRs),
		"rate_limit":      r.RateLimit,
		"rate_burst":      r.RateBurst,
		"max_active_keys": r.MaxActiveKeys,
		"recv_window":     r.RecvWindow.Milliseconds(),
		"labels":          md,
		"description":     r.Description,
		"on_anomaly":      r.OnAnomaly,
		"anomaly_rate":    r.AnomalyRate,
		"flag_new_source": r.FlagNewSource,
	}
}

func (b *backend) pathRoleWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	if err := validateName("name", name); err != nil {
		return respond(err)
	}
	lock := locksutil.LockForKey(b.roleLocks, name)
	lock.Lock()
	defer lock.Unlock()
	// Role writes are checked against config signed_scopes, and a config
	// write that adds a signed scope checks every role: holding
	// configWriteMu from reading the config to storing the role keeps
	// each from missing the other. (Lock order: role, then config, as in
	// creds.)
	b.configWriteMu.Lock()
	defer b.configWriteMu.Unlock()

	cfg, err := b.getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	existing, err := b.getRole(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	r := &role{KeyType: keyTypeBearer, RecvWindow: defaultRecvWindow, OnAnomaly: anomalyNone}
	if existing != nil {
		r = existing
	}
	if err := applyRole(r, d, cfg); err != nil {
		return respond(err)
	}
	e, err := logical.StorageEntryJSON(roleStoragePrefix+name, r)
	if err != nil {
		return nil, err
	}
	if err := req.Storage.Put(ctx, e); err != nil {
		b.roles.drop(name) // the write may have landed
		return nil, err
	}
	// Cached as a reader decoding storage would see it.
	if stored, err := decodeRole(e.Value); err == nil {
		b.roles.put(name, stored)
	} else {
		b.roles.drop(name)
	}
	return roleWriteWarnings(r, b.System().MaxLeaseTTL(), strings.TrimSuffix(req.MountPoint, "/")), nil
}

// roleWriteWarnings says when a role asks for more time than the mount
// allows: Vault caps every lease at the mount's max_lease_ttl (768h unless
// tuned), so such a role's keys silently live shorter than it says.
func roleWriteWarnings(r *role, mountMax time.Duration, mount string) *logical.Response {
	if mount == "" {
		mount = "<mount>"
	}
	if mountMax <= 0 {
		return nil
	}
	resp := &logical.Response{}
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"max_ttl", r.MaxTTL}, {"ttl", r.TTL}} {
		if f.d > mountMax {
			resp.AddWarning(fmt.Sprintf("%s (%s) exceeds this mount's max_lease_ttl (%s): keys of this role are capped at %s; raise it with `vault secrets tune -max-lease-ttl=%s %s` (or cryptokeys_secrets_engine max_lease_ttl)", f.name, f.d, mountMax, mountMax, f.d, mount))
		}
	}
	if len(resp.Warnings) == 0 {
		return nil
	}
	return resp
}

// applyRole validates every given field against the engine's rules and the
// mount config, then updates r. On error r may be partly changed; callers
// discard it, so nothing is half-written.
func applyRole(r *role, d *framework.FieldData, cfg *engineConfig) error {
	if v, ok := d.GetOk("environment"); ok {
		r.Environment = v.(string)
	}
	if err := validateEnvironment("environment", r.Environment, cfg.Environments); err != nil {
		return err
	}
	if v, ok := d.GetOk("scopes"); ok {
		scopes, err := validateScopes("scopes", v.([]string), cfg.Scopes)
		if err != nil {
			return err
		}
		r.Scopes = scopes
	}
	if v, ok := d.GetOk("key_type"); ok {
		kt := v.(string)
		if !slices.Contains(keyTypes, kt) {
			return badField("key_type", "%q must be one of %s", printable(kt), strings.Join(keyTypes, ", "))
		}
		r.KeyType = kt
	}
	for _, f := range []struct {
		name string
		dst  *time.Duration
	}{{"ttl", &r.TTL}, {"max_ttl", &r.MaxTTL}} {
		if v, ok := d.GetOk(f.name); ok {
			dur := time.Duration(v.(int)) * time.Second
			if dur < 0 {
				return badField(f.name, "must not be negative")
			}
			*f.dst = dur
		}
	}
	if r.MaxTTL > 0 && r.TTL > r.MaxTTL {
		return badField("ttl", "(%s) must not exceed max_ttl (%s)", r.TTL, r.MaxTTL)
	}
	if cfg.MaxTTL > 0 && r.MaxTTL > cfg.MaxTTL {
		return badField("max_ttl", "(%s) must not exceed the mount config's max_ttl (%s)", r.MaxTTL, cfg.MaxTTL)
	}
	if cfg.MaxTTL > 0 && r.TTL > cfg.MaxTTL {
		return badField("ttl", "(%s) must not exceed the mount config's max_ttl (%s)", r.TTL, cfg.MaxTTL)
	}
	if v, ok := d.GetOk("allowed_cidrs"); ok {
		cidrs, err := validateCIDRs("allowed_cidrs", v.([]string))
		if err != nil {
			return err
		}
		r.AllowedCIDRs = cidrs
	}
	if v, ok := d.GetOk("rate_limit"); ok {
		rl, err := perSecond("rate_limit", v.(float64), "unlimited")
		if err != nil {
			return err
		}
		r.RateLimit = rl
	}
	if v, ok := d.GetOk("rate_burst"); ok {
		rb := v.(int)
		if rb < 0 || rb > maxRateLimit {
			return badField("rate_burst", "must be between 0 and %d", int(maxRateLimit))
		}
		r.RateBurst = rb
	}
	if v, ok := d.GetOk("max_active_keys"); ok {
		n := v.(int)
		if n < 0 || n > maxActiveKeysCap {
			return badField("max_active_keys", "must be between 0 (unlimited) and %d", maxActiveKeysCap)
		}
		r.MaxActiveKeys = n
	}
	if v, ok := d.GetOk("recv_window"); ok {
		w, err := parseRecvWindow(v.(string))
		if err != nil {
			return err
		}
		r.RecvWindow = w
	}
	if v, ok := d.GetOk("labels"); ok {
		md := v.(map[string]string)
		if err := validateLabels("labels", md); err != nil {
			return err
		}
		r.Labels = md
	}
	if v, ok := d.GetOk("description"); ok {
		desc := v.(string)
		if len(desc) > wire.MaxDescriptionLen {
			return badField("description", "must be at most %d characters", wire.MaxDescriptionLen)
		}
		r.Description = desc
	}
	if v, ok := d.GetOk("on_anomaly"); ok {
		oa := v.(string)
		if !slices.Contains(anomalyActions, oa) {
			return badField("on_anomaly", "%q must be one of %s", printable(oa), strings.Join(anomalyActions, ", "))
		}
		r.OnAnomaly = oa
	}
	if v, ok := d.GetOk("anomaly_rate"); ok {
		ar, err := perSecond("anomaly_rate", v.(float64), "off")
		if err != nil {
			return err
		}
		r.AnomalyRate = ar
	}
	if v, ok := d.GetOk("flag_new_source"); ok {
		r.FlagNewSource = v.(bool)
	}
	if r.OnAnomaly == "" {
		r.OnAnomaly = anomalyNone
	}
	// Checked on the role the write results in, whichever fields it
	// changes: a bearer role left holding a signed scope (by an earlier
	// build) can only be updated by a write that fixes it.
	if s := r.signedScopeOfBearer(cfg); s != "" {
		return badField("scopes", "scope %q needs a signed request (config signed_scopes), so key_type must be hmac or ed25519, not bearer (drop the scope or change key_type in this write)", s)
	}
	return nil
}

// signedScopeOfBearer is the first of a bearer role's scopes that config
// signed_scopes lists, or "".
func (r *role) signedScopeOfBearer(cfg *engineConfig) string {
	if r.KeyType != keyTypeBearer {
		return ""
	}
	for _, s := range r.Scopes {
		if slices.Contains(cfg.SignedScopes, s) {
			return s
		}
	}
	return ""
}

// parseRecvWindow accepts milliseconds, as exchanges publish recvWindow, or
// a Go duration.
func parseRecvWindow(s string) (time.Duration, error) {
	var w time.Duration
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		if ms > int64(maxRecvWindow/time.Millisecond) {
			return 0, badField("recv_window", "must be at most %d ms", maxRecvWindow.Milliseconds())
		}
		w = time.Duration(ms) * time.Millisecond
	} else if d, err := time.ParseDuration(s); err == nil {
		w = d
	} else {
		return 0, badField("recv_window", "%q must be milliseconds (5000) or a duration (5s)", printable(s))
	}
	if w <= 0 || w > maxRecvWindow {
		return 0, badField("recv_window", "must be more than 0 and at most %d ms", maxRecvWindow.Milliseconds())
	}
	return w, nil
}

func (b *backend) pathRoleDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	if err := validateName("name", name); err != nil {
		return respond(err)
	}
	lock := locksutil.LockForKey(b.roleLocks, name)
	lock.Lock()
	defer lock.Unlock()
	err := req.Storage.Delete(ctx, roleStoragePrefix+name)
	b.roles.drop(name)
	return nil, err
}

// perSecond checks a requests-per-second field: 0 (which means zero, e.g.
// "unlimited" or "off") up to maxRateLimit, never NaN.
func perSecond(field string, v float64, zero string) (float64, error) {
	if math.IsNaN(v) || v < 0 || v > maxRateLimit {
		return 0, badField(field, "must be between 0 (%s) and %g requests per second", zero, maxRateLimit)
	}
	return v, nil
}
