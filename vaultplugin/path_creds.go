package vaultplugin

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"filippo.io/edwards25519"
	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"
)

// hmacSecretLen is the length of an hmac key's secret_key in base62
// characters (~380 bits). Clients use its ASCII bytes as the HMAC key.
const hmacSecretLen = 64

func pathCreds(b *backend) []*framework.Path {
	return []*framework.Path{{
		Pattern: "creds/" + framework.MatchAllRegex("role"),
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: operationPrefix,
			OperationVerb:   "issue",
			OperationSuffix: "api-key",
		},
		Fields: map[string]*framework.FieldSchema{
			"role": {
				Type:        framework.TypeString,
				Description: "Role to issue the key from.",
				Required:    true,
			},
			"ttl": {
				Type:        framework.TypeDurationSecond,
				Description: "Lease TTL for this key; may be shorter than the role's, never longer than its max_ttl.",
			},
			"scopes": {
				Type:        framework.TypeCommaStringSlice,
				Description: "Narrow the key to a subset of the role's scopes. A role with no scopes grants none, so none can be requested.",
			},
			"allowed_cidrs": {
				Type:        framework.TypeCommaStringSlice,
				Description: "Narrow the key's source CIDRs; each must lie inside the role's allowed_cidrs when the role sets any.",
			},
			"name": {
				Type:        framework.TypeString,
				Description: "Label for the key (shown in listings and verify answers), e.g. the customer or service using it.",
			},
			"labels": {
				Type:        framework.TypeKVPairs,
				Description: "Key-value pairs added to the role's labels for this key. A request may add keys, never change the role's: a key the role sets may only be repeated with the role's value.",
			},
			"public_key": {
				Type:        framework.TypeString,
				Description: "ed25519 roles only: the client's public key (PEM, SubjectPublicKeyInfo), so the engine never sees the private key.",
			},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback:  strict(b.pathCredsIssue),
				Responses: okResponse("A new key as a leased secret.", issuedKeyResponseFields),
				Summary:   "Issue a key with the role's defaults.",
				DisplayAttrs: &framework.DisplayAttributes{
					OperationVerb: "issue",
				},
			},
			logical.UpdateOperation: &framework.PathOperation{
				Callback:  strict(b.pathCredsIssue),
				Responses: okResponse("A new key as a leased secret.", issuedKeyResponseFields),
				Summary:   "Issue a key, optionally narrowing ttl, scopes and allowed_cidrs.",
				DisplayAttrs: &framework.DisplayAttributes{
					OperationVerb: "issue-with-parameters",
				},
			},
		},
		HelpSynopsis: "Issue an API key from a role as a leased secret.",
		HelpDescription: `Issues a new API key from the named role. The key is returned once, as a
leased secret: renew the lease (up to the role's max_ttl) to keep it, revoke
it (vault lease revoke) to end it. The engine stores only a keyed hash of
bearer keys. hmac keys also return a secret_key to sign requests with;
ed25519 keys return a private_key, or take your own public_key.`,
	}}
}

// keyTemplate is what a new key copies: from a role on creds, from the
// predecessor on rotate.
type keyTemplate struct {
	roleName    string
	environment string
	scopes      []string
	keyType     string
	cidrs       []string
	labels      map[string]string
	rateLimit   float64
	rateBurst   int
	recvWindow  time.Duration
	anomaly     anomalyPolicy
	name        string
	ttl         time.Duration // 0 = engine default
	maxTTL      time.Duration // 0 = engine default
	publicKey   string
	rotatedFrom string
}

func templateFromRole(name string, r *role) keyTemplate {
	return keyTemplate{
		roleName:    name,
		environment: r.Environment,
		scopes:      r.Scopes,
		keyType:     r.KeyType,
		cidrs:       r.AllowedCIDRs,
		labels:      r.Labels,
		rateLimit:   r.RateLimit,
		rateBurst:   r.RateBurst,
		recvWindow:  r.RecvWindow,
		anomaly:     anomalyPolicy{OnAnomaly: r.OnAnomaly, AnomalyRate: r.AnomalyRate, FlagNewSource: r.FlagNewSource},
		ttl:         r.TTL,
		maxTTL:      r.MaxTTL,
	}
}

func (b *backend) pathCredsIssue(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	roleName := d.Get("role").(string)
	if err := validateName("role", roleName); err != nil {
		return respond(err)
	}
	// The role's lock keeps the role as read for the whole issue (role
	// writes take it alone). Issues of a role without max_active_keys
	// share it, so a pipeline issuing many keys from one role is not
	// serialised. A capped role's issues take it alone, which makes the
	// count and the issue one step against other issues and rotations of
	// the role's keys.
	lock := locksutil.LockForKey(b.roleLocks, roleName)
	lock.RLock()
	r, err := b.getRole(ctx, req.Storage, roleName)
	if err == nil && r != nil && r.MaxActiveKeys > 0 {
		lock.RUnlock()
		lock.Lock()
		defer lock.Unlock()
		// The role may have changed while no lock was held.
		r, err = b.getRole(ctx, req.Storage, roleName)
	} else {
		defer lock.RUnlock()
	}
	if err != nil {
		return nil, err
	}
	if r == nil {
		return respond(badField("role", "%q does not exist", roleName))
	}
	if _, err := b.configForIssue(ctx, req.Storage); err != nil {
		return nil, err
	}
	// Read again under prefixMu: the prefix cannot change until the record
	// is written (see prefixMu).
	b.prefixMu.RLock()
	defer b.prefixMu.RUnlock()
	cfg, err := b.getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	t := templateFromRole(roleName, r)
	if err := narrowTemplate(&t, d, cfg, b.System().MaxLeaseTTL()); err != nil {
		return respond(err)
	}
	if r.MaxActiveKeys > 0 {
		n, err := b.countLiveKeys(ctx, req.Storage, roleName)
		if err != nil {
			return nil, err
		}
		if n >= r.MaxActiveKeys {
			return respond(badField("max_active_keys", "role %q already has %d live keys, its maximum; revoke one or raise max_active_keys", roleName, n))
		}
	}
	resp, _, err := b.issue(ctx, req, cfg, t)
	if err != nil {
		return respond(err)
	}
	return resp, nil
}

// narrowTemplate applies the request's optional narrowing. A request may only
// take away from what the role grants, never add.
func narrowTemplate(t *keyTemplate, d *framework.FieldData, cfg *engineConfig, sysMax time.Duration) error {
	if v, ok := d.GetOk("ttl"); ok {
		ttl := time.Duration(v.(int)) * time.Second
		if ttl < 0 {
			return badField("ttl", "must not be negative")
		}
		if max := effectiveMax(t.maxTTL, cfg.MaxTTL, sysMax); max > 0 && ttl > max {
			return badField("ttl", "(%s) must not exceed %s (%s)", ttl, ttlLimitName(max, t.maxTTL, cfg.MaxTTL), max)
		}
		if ttl > 0 {
			t.ttl = ttl
		}
	}
	if v, ok := d.GetOk("scopes"); ok {
		scopes, err := narrowScopes(v.([]string), t.scopes)
		if err != nil {
			return err
		}
		t.scopes = scopes
	}
	if v, ok := d.GetOk("allowed_cidrs"); ok {
		cidrs, err := validateCIDRs("allowed_cidrs", v.([]string))
		if err != nil {
			return err
		}
		if len(cidrs) > 0 {
			if err := cidrsWithin("allowed_cidrs", cidrs, t.cidrs); err != nil {
				return err
			}
			t.cidrs = cidrs
		}
	}
	if v, ok := d.GetOk("name"); ok {
		name := v.(string)
		if !wire.ValidKeyName(name) {
			return badField("name", "must be at most %d printable characters", wire.MaxKeyNameLen)
		}
		t.name = name
	}
	if v, ok := d.GetOk("labels"); ok {
		extra := v.(map[string]string)
		merged := make(map[string]string, len(t.labels)+len(extra))
		for k, v := range t.labels {
			merged[k] = v
		}
		// A request adds labels, never changes the role's: a pipeline
		// token could otherwise mint a key labelled as another tenant
		// (customer_id=other). Repeating the role's value is fine.
		for _, k := range slices.Sorted(maps.Keys(extra)) {
			if have, set := t.labels[k]; set && have != extra[k] {
				return badField("labels", "key %q is set by the role and a request may not change it (a request may only add keys)", printable(k))
			}
			merged[k] = extra[k]
		}
		if err := validateLabels("labels", merged); err != nil {
			return err
		}
		t.labels = merged
	}
	if v, ok := d.GetOk("public_key"); ok && v.(string) != "" {
		if t.keyType != keyTypeEd25519 {
			return badField("public_key", "only ed25519 roles take a public_key (this role's key_type is %s)", t.keyType)
		}
		if _, err := parseEd25519PublicKey(v.(string)); err != nil {
			return badField("public_key", "%v", err)
		}
		t.publicKey = v.(string)
	}
	return nil
}

// narrowScopes checks a request's scopes against the role's: a role with
// no scopes grants none, and a request may only take away from what the
// role grants. (validateScopes' catalog, where empty means "any scope", is
// the mount's scope catalog, never a role's grant.)
func narrowScopes(requested, granted []string) ([]string, error) {
	scopes, err := validateScopes("scopes", requested, nil)
	if err != nil {
		return nil, err
	}
	if len(granted) == 0 && len(scopes) > 0 {
		return nil, badField("scopes", "the role grants no scopes, so none can be requested")
	}
	for _, s := range scopes {
		if !slices.Contains(granted, s) {
			return nil, badField("scopes", "scope %q is not granted by the role (a key may only narrow its role's scopes: %s)", s, strings.Join(granted, ", "))
		}
	}
	return scopes, nil
}

// ttlLimitName names the bound that max is: the role's own max_ttl, the
// mount config's, or Vault's lease maximum for the mount, so a refusal
// blames the limit that really applies.
func ttlLimitName(max, roleMax, configMax time.Duration) string {
	switch max {
	case roleMax:
		return "the role's max_ttl"
	case configMax:
		return "the mount config's max_ttl"
	}
	return "this mount's max_lease_ttl (Vault's lease maximum; vault secrets tune -max-lease-ttl raises it)"
}

// effectiveMax is the smaller of the non-zero bounds (0 = no bound here).
func effectiveMax(bounds ...time.Duration) time.Duration {
	var m time.Duration
	for _, b := range bounds {
		if b > 0 && (m == 0 || b < m) {
			m = b
		}
	}
	return m
}

// issue creates, stores and returns a new key as a leased secret.
func (b *backend) issue(ctx context.Context, req *logical.Request, cfg *engineConfig, t keyTemplate) (*logical.Response, *keyRecord, error) {
	// No bearer key is ever issued holding a signed scope, from creds or
	// rotate, whatever a role written by an earlier build says.
	if t.keyType == keyTypeBearer {
		for _, s := range t.scopes {
			if slices.Contains(cfg.SignedScopes, s) {
				return nil, nil, badField("scopes", "scope %q needs a signed request (config signed_scopes) and this is a bearer key: request scopes without it, or change the role's key_type to hmac or ed25519", s)
			}
		}
	}
	resp, rec, err := b.newKey(req, cfg, t)
	if err != nil {
		return nil, nil, err
	}
	if err := b.stampIssue(ctx, req.Storage, rec, nil); err != nil {
		return nil, nil, err
	}
	if err := b.storeNewKey(ctx, req.Storage, rec); err != nil {
		return nil, nil, err
	}
	return resp, rec, nil
}

// newKey creates a new key and its lease response without storing
// anything. It is the single place where TTLs are clamped, so creds and
// rotate cannot disagree.
func (b *backend) newKey(req *logical.Request, cfg *engineConfig, t keyTemplate) (*logical.Response, *keyRecord, error) {
	now := b.now()
	mount := b.System()
	maxTTL := effectiveMax(t.maxTTL, cfg.MaxTTL, mount.MaxLeaseTTL())
	ttl := effectiveTTL(t.ttl, cfg.DefaultTTL)
	if ttl == 0 {
		ttl = mount.DefaultLeaseTTL()
	}
	ttl, warnings, err := framework.CalculateTTL(mount, 0, ttl, 0, maxTTL, 0, time.Time{})
	if err != nil {
		return nil, nil, err
	}

	key, err := keyformat.Generate(cfg.KeyPrefix, t.environment)
	if err != nil {
		return nil, nil, err
	}
	rec := &keyRecord{
		KeyID:             key.KeyID,
		Prefix:            key.Prefix,
		Name:              t.name,
		Role:              t.roleName,
		Environment:       t.environment,
		Scopes:            t.scopes,
		KeyType:           t.keyType,
		AllowedCIDRs:      t.cidrs,
		Labels:            t.labels,
		RateLimit:         t.rateLimit,
		RateBurst:         t.rateBurst,
		RecvWindow:        t.recvWindow,
		anomalyPolicy:     t.anomaly,
		Hash:              keyHash(cfg.Pepper, key.Raw()),
		CreatedAt:         now,
		CreatedBy:         req.DisplayName,
		CreatedByEntityID: req.EntityID,
		TTL:               ttl,
		ExpiresAt:         now.Add(ttl),
		MaxExpiresAt:      now.Add(maxTTL),
		RotatedFrom:       t.rotatedFrom,
	}
	data := map[string]any{
		"api_key":       key.Raw(),
		"key_id":        key.KeyID,
		"name":          t.name,
		"role":          t.roleName,
		"environment":   t.environment,
		"scopes":        nonNil(t.scopes),
		"key_type":      t.keyType,
		"allowed_cidrs": nonNil(t.cidrs),
		"labels":        nonNilMap(t.labels),
		"expires_at":    formatTime(rec.ExpiresAt),
	}
	switch t.keyType {
	case keyTypeHMAC:
		secret, err := keyformat.RandomBase62(rand.Reader, hmacSecretLen)
		if err != nil {
			return nil, nil, err
		}
		rec.SecretKey = []byte(secret)
		data["secret_key"] = secret
	case keyTypeEd25519:
		pubPEM := t.publicKey
		if pubPEM == "" {
			pub, priv, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				return nil, nil, err
			}
			privDER, err := x509.MarshalPKCS8PrivateKey(priv)
			if err != nil {
				return nil, nil, err
			}
			pubDER, err := x509.MarshalPKIXPublicKey(pub)
			if err != nil {
				return nil, nil, err
			}
			data["private_key"] = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}))
			pubPEM = string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}))
		}
		rec.PublicKey = pubPEM
		data["public_key"] = pubPEM
	}

	resp := b.Secret(secretAPIKeyType).Response(data, map[string]any{
		"key_id": rec.KeyID,
		"role":   rec.Role,
	})
	resp.Secret.TTL = ttl
	resp.Secret.MaxTTL = maxTTL
	for _, w := range warnings {
		resp.AddWarning(w)
	}
	return resp, rec, nil
}

// storeNewKey writes a new key's index entry and record. If the record
// write fails it deletes both again, best effort: the write may have
// committed, and a record whose lease was never handed out would hold a
// max_active_keys slot until it expired.
func (b *backend) storeNewKey(ctx context.Context, s logical.Storage, rec *keyRecord) error {
	// Index first: an index entry without a record is harmless (tidy
	// sweeps it after orphanGrace), a record missing from the index would
	// escape bulk revocation.
	if err := b.writeIndex(ctx, s, rec); err != nil {
		return err
	}
	if err := b.putKey(ctx, s, rec); err != nil {
		_ = b.deleteNewKey(ctx, s, rec) // best effort; it logs its own failure
		return err
	}
	// The id may have answered NOT_FOUND a moment ago (a forged key's
	// lucky guess): verify must look again. (A key whose write failed is
	// never handed out, so only a written one needs this.)
	b.notFound.drop(rec.KeyID)
	return nil
}

// deleteNewKey removes a key whose lease was never handed out: record
// first, then its index entry (a crash or failure in between leaves only an
// index entry, which readers skip and tidy sweeps after orphanGrace). Best
// effort; failures are logged.
func (b *backend) deleteNewKey(ctx context.Context, s logical.Storage, rec *keyRecord) error {
	err := s.Delete(ctx, keyStoragePrefix+rec.KeyID)
	b.cache.drop(rec.KeyID)
	if err == nil {
		err = s.Delete(ctx, indexEntry(rec.Role, rec.Environment, rec.KeyID))
	}
	if err != nil {
		b.Logger().Warn("removing a key whose lease was never handed out", "key_id", rec.KeyID, "error", err)
	}
	return err
}

func effectiveTTL(ttls ...time.Duration) time.Duration {
	for _, t := range ttls {
		if t > 0 {
			return t
		}
	}
	return 0
}

// countLiveKeys counts the keys that take a max_active_keys slot: live keys
// (neither revoked nor expired; suspended ones included) that have not been
// rotated out. A key rotated out with a grace period still verifies until
// the grace ends, but its successor has taken its slot: rotation swaps one
// slot for another, never adds one, so a role at its cap can still rotate
// with overlap (a key has at most one successor, see pathRotate). At any
// moment a role thus has at most max_active_keys counted keys, plus at most
// one predecessor in its grace period for each of them.
//
// The count is exact only under the role's lock, which creds and rotate
// both hold while they count or swap slots.
func (b *backend) countLiveKeys(ctx context.Context, s logical.Storage, role string) (int, error) {
	ids, err := roleKeyIDs(ctx, s, role)
	if err != nil {
		return 0, err
	}
	now := b.now()
	n := 0
	for _, id := range ids {
		r, err := b.getKey(ctx, s, id)
		if err != nil {
			return 0, err
		}
		if r != nil && r.live(now) && r.RotatedTo == "" {
			n++
		}
	}
	return n, nil
}

func parseEd25519PublicKey(s string) (ed25519.PublicKey, error) {
	blk, _ := pem.Decode([]byte(s))
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("must be a PEM \"PUBLIC KEY\" block (SubjectPublicKeyInfo)")
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("not a valid SubjectPublicKeyInfo")
	}
	pk, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("must be an Ed25519 public key")
	}
	if err := checkEd25519Point(pk); err != nil {
		return nil, err
	}
	return pk, nil
}

// checkEd25519Point refuses public keys that make a signature prove
// nothing. For a point of small order (the identity and the seven other
// points whose order divides the cofactor 8) a fixed signature, such as
// R = identity with S = 0, verifies for every message, so a key "signed"
// with it is a bearer key. A non-canonical encoding (y >= p, or x = 0 with
// the sign bit set) names the same point as another encoding, and
// implementations disagree on whether to accept it. Both are refused here,
// on creds and rotate and when a stored record is loaded (a record stored
// before this check then never verifies a signature).
func checkEd25519Point(pk ed25519.PublicKey) error {
	p, err := new(edwards25519.Point).SetBytes(pk)
	if err != nil {
		return fmt.Errorf("is not a point on the Ed25519 curve")
	}
	// SetBytes accepts non-canonical encodings; a canonical one is what
	// encoding the point again gives back.
	if !bytes.Equal(p.Bytes(), pk) {
		return fmt.Errorf("is a non-canonical encoding of an Ed25519 point")
	}
	if new(edwards25519.Point).MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) == 1 {
		return fmt.Errorf("is a small-order Ed25519 point, for which one signature verifies every message")
	}
	return nil
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
