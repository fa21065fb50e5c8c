package vaultplugin

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

const (
	keyStoragePrefix = "keys/"
	// The key index lets bulk revocation, listings and max_active_keys find
	// a role's or an environment's keys without scanning every record: one
	// entry per key, keyIndexPrefix + role/environment/key_id. An entry
	// without a record (left by an interrupted issue, which writes the
	// index first, or by a removal that stopped between the record and its
	// entry) is skipped by readers, and tidy sweeps it once it has been
	// orphaned for orphanGrace (sweepIndex).
	keyIndexPrefix = "index/keys/"
	// anomalyIndexPrefix lists keys with recorded anomalies, for
	// monitor/anomalies; tidy sweeps an entry left without its record
	// (sweepAnomalyIndex).
	anomalyIndexPrefix = "index/anomalies/"

	statusActive  = "active"
	statusRevoked = "revoked"
	statusExpired = "expired"
	// statusSuspended is shown, never stored: a suspended key is still live
	// (it counts toward max_active_keys and can be resumed).
	statusSuspended = "suspended"

	defaultCacheSize = 200_000
)

// keyRecord is everything the engine keeps about one key. It never holds a
// bearer key: only HMAC-SHA256(pepper, api_key). HMAC secret keys are kept
// because the engine must recompute signatures; the entry is seal-wrapped.
type keyRecord struct {
	KeyID        string            `json:"key_id"`
	Prefix       string            `json:"prefix"`
	Name         string            `json:"name,omitempty"`
	Role         string            `json:"role"`
	Environment  string            `json:"environment"`
	Scopes       []string          `json:"scopes"`
	KeyType      string            `json:"key_type"`
	AllowedCIDRs []string          `json:"allowed_cidrs,omitempty"`
	Labels       map[string]string `json:"metadata,omitempty"` // stored under its first name
	RateLimit    float64           `json:"rate_limit,omitempty"`
	RateBurst    int               `json:"rate_burst,omitempty"`
	RecvWindow   time.Duration     `json:"recv_window,omitempty"`
	anomalyPolicy

	Hash      []byte `json:"hash"`
	SecretKey []byte `json:"secret_key,omitempty"` // hmac keys only
	PublicKey string `json:"public_key,omitempty"` // ed25519 keys only (PEM)

	CreatedAt         time.Time `json:"created_at"`
	CreatedBy         string    `json:"created_by"`
	CreatedByEntityID string    `json:"created_by_entity_id,omitempty"`
	// TTL is the lease TTL asked for at issue; renewals reuse it.
	TTL          time.Duration `json:"ttl"`
	ExpiresAt    time.Time     `json:"expires_at"`
	MaxExpiresAt time.Time     `json:"max_expires_at"`

	RevokedAt time.Time `json:"revoked_at,omitzero"`
	// Ended is set when the key's end took effect as it was written (every
	// revocation but a rotation's grace, and an expiry the lease's end
	// recorded): from then on status never reads a clock, so a wall clock
	// stepped back, or a node whose clock lags the writer's, cannot bring
	// the key back. Only a rotated-out key in its grace period has a
	// RevokedAt in the future, and no Ended.
	Ended bool `json:"ended,omitempty"`
	// Who ended, suspended or resumed the key and why (stored inline, as
	// these fields always were).
	*KeyNotes

	RotatedFrom string `json:"rotated_from,omitempty"`
	RotatedTo   string `json:"rotated_to,omitempty"`
	// RotatedFromCreatedAt is when the key's lineage began (its
	// predecessor's birth): a bulk revocation watermark counts a successor
	// from then (bulk_watermark.go).
	RotatedFromCreatedAt time.Time `json:"rotated_from_created_at,omitzero"`

	LastUsedAt   time.Time `json:"last_used_at,omitzero"`
	UseCount     uint64    `json:"use_count,omitempty"`
	LastSourceIP string    `json:"last_source_ip,omitempty"`
	// SourceIPs are the most recent distinct source addresses, newest last.
	SourceIPs []string `json:"source_ips,omitempty"`

	Anomalies   []anomaly `json:"anomalies,omitempty"`
	SuspendedAt time.Time `json:"suspended_at,omitzero"`
	// Resumes counts the resumes of this key. A suspension decided in
	// memory remembers the count it saw; once a resume has moved it on, the
	// suspension is lifted, whatever a flush that took it before the
	// resume, or gave it back after, still holds (clocks play no part).
	Resumes uint64 `json:"resumes,omitempty"`

	// pub and cidrs are PublicKey and AllowedCIDRs parsed once when the
	// record is loaded, so verify parses neither per request.
	pub   *[ed25519.PublicKeySize]byte
	cidrs []netip.Prefix
}

// KeyNotes are the words about a key's end, suspension and resume. Few keys
// have any, and the engine caches up to 200,000 records: behind a pointer
// they make a record 640 bytes rather than 768 (with pub as an array
// pointer), about 13 MB less at 100,000 cached keys. They are embedded so
// the stored JSON is as before (encoding/json inlines an embedded pointer's
// fields, and allocates it when one is present). Exported only because
// encoding/json cannot allocate an embedded pointer to an unexported type.
//
// Read them with notes() and change them with editNotes(): a record is
// copied (c := *r) before a change and cached records are never changed
// in place, so the pointer a copy shares with its original must never be
// written through.
type KeyNotes struct {
	RevokedBy    string `json:"revoked_by,omitempty"`
	RevokeReason string `json:"revoke_reason,omitempty"`
	// RevokeJob names the bulk revocation job (revoke/jobs/<id>) that
	// revoked the key, if one did.
	RevokeJob     string    `json:"revoke_job,omitempty"`
	SuspendReason string    `json:"suspend_reason,omitempty"`
	ResumedAt     time.Time `json:"resumed_at,omitzero"`
	ResumedBy     string    `json:"resumed_by,omitempty"`
	ResumeReason  string    `json:"resume_reason,omitempty"`
}

// notes returns the record's notes (zero when it has none).
func (r *keyRecord) notes() KeyNotes {
	if r.KeyNotes == nil {
		return KeyNotes{}
	}
	return *r.KeyNotes
}

// editNotes changes the record's notes on a fresh copy, never through the
// pointer it may share with the record it was copied from.
func (r *keyRecord) editNotes(edit func(n *KeyNotes)) {
	n := r.notes()
	edit(&n)
	if n == (KeyNotes{}) {
		r.KeyNotes = nil
		return
	}
	r.KeyNotes = &n
}

// decodeKeyRecord decodes a stored record and prepares derived fields.
func decodeKeyRecord(e *logical.StorageEntry) (*keyRecord, error) {
	r := new(keyRecord)
	if err := e.DecodeJSON(r); err != nil {
		return nil, fmt.Errorf("decoding key record: %w", err)
	}
	r.prepare()
	return r, nil
}

func (r *keyRecord) prepare() {
	if r.PublicKey != "" && r.pub == nil {
		if k, err := parseEd25519PublicKey(r.PublicKey); err == nil && len(k) == ed25519.PublicKeySize {
			r.pub = (*[ed25519.PublicKeySize]byte)(k)
		}
	}
	if len(r.AllowedCIDRs) > 0 && r.cidrs == nil {
		r.cidrs = make([]netip.Prefix, 0, len(r.AllowedCIDRs))
		for _, c := range r.AllowedCIDRs {
			// Stored blocks were checked on write; one that no longer
			// parses allows nothing.
			if p, err := netip.ParsePrefix(c); err == nil {
				r.cidrs = append(r.cidrs, p)
			}
		}
	}
}

// RevokedAt may lie in the future: a key rotated out with a grace period is
// revoked when the grace ends.
func (r *keyRecord) status(now time.Time) string {
	switch {
	case r.Ended && !r.RevokedAt.IsZero():
		return statusRevoked
	case r.Ended:
		return statusExpired
	case !r.RevokedAt.IsZero() && !now.Before(r.RevokedAt):
		return statusRevoked
	case !now.Before(r.ExpiresAt):
		return statusExpired
	}
	return statusActive
}

// end is when the key stops verifying: its expiry, or an earlier scheduled
// revocation. Verify reports it as expires_at, so no cache outlives it.
func (r *keyRecord) end() time.Time {
	if !r.RevokedAt.IsZero() && r.RevokedAt.Before(r.ExpiresAt) {
		return r.RevokedAt
	}
	return r.ExpiresAt
}

func (r *keyRecord) live(now time.Time) bool { return r.status(now) == statusActive }

// watchesAnomalies reports whether the key's policy looks for anomalies:
// only then does verify take the anomaly tracker's lock.
func (r *keyRecord) watchesAnomalies() bool {
	return r.OnAnomaly != "" && r.OnAnomaly != anomalyNone
}

// keyStatus is a key's status now, suspension included: statusRevoked,
// statusExpired, statusSuspended (with when) or statusActive. A suspension
// is the stored one, or one this node decided and has not yet flushed; only
// a key whose policy suspends can have the latter, so for any other key no
// lock is taken.
func (b *backend) keyStatus(r *keyRecord, now time.Time) (status string, suspendedAt time.Time) {
	if st := r.status(now); st != statusActive {
		return st, time.Time{}
	}
	if !r.SuspendedAt.IsZero() {
		return statusSuspended, r.SuspendedAt
	}
	if r.OnAnomaly == anomalySuspend {
		if at := b.anomalies.suspendedAt(r); !at.IsZero() {
			return statusSuspended, at
		}
	}
	return statusActive, time.Time{}
}

// keyHash is the only form in which a bearer key is stored.
func keyHash(pepper []byte, apiKey string) []byte {
	m := hmac.New(sha256.New, pepper)
	m.Write([]byte(apiKey))
	return m.Sum(nil)
}

// getKey reads a record, from the cache when it holds one. On a miss it
// reads storage without the key's lock (verify must stay cheap), so a write
// can land between the read and the caching: fill keeps the stale copy out
// of the cache then (see storeCache).
func (b *backend) getKey(ctx context.Context, s logical.Storage, keyID string) (*keyRecord, error) {
	r, _, err := b.cache.through(keyID, func() (*keyRecord, bool, error) {
		e, err := s.Get(ctx, keyStoragePrefix+keyID)
		if err != nil || e == nil {
			return nil, false, err
		}
		r, err := decodeKeyRecord(e)
		return r, err == nil, err
	})
	if err != nil {
		return nil, err
	}
	// The cache holds records as stored; bulk revocations apply on top.
	return b.watermarked(ctx, s, r)
}

// loadKey reads a record from storage, bypassing the cache, for
// read-modify-write under the key's lock. The returned record is private to
// the caller. A bulk revocation that covers the key is applied (so writing
// the record back records it).
func (b *backend) loadKey(ctx context.Context, s logical.Storage, keyID string) (*keyRecord, error) {
	r, err := b.loadStoredKey(ctx, s, keyID)
	if err != nil {
		return nil, err
	}
	return b.watermarked(ctx, s, r)
}

// loadStoredKey is loadKey without the watermarks: the record as stored.
func (b *backend) loadStoredKey(ctx context.Context, s logical.Storage, keyID string) (*keyRecord, error) {
	e, err := s.Get(ctx, keyStoragePrefix+keyID)
	if err != nil || e == nil {
		return nil, err
	}
	return decodeKeyRecord(e)
}

// putKey writes a record and replaces the cached copy. Records in the cache
// are never mutated in place: verify reads them without locks.
//
// A failed Put may still have committed (storage can answer an error after
// writing), so on failure the cached copy is dropped, never kept: the next
// read takes whatever storage holds. Keeping it would let a revocation that
// committed go unseen on this node, which gets no Invalidate for its own
// writes.
func (b *backend) putKey(ctx context.Context, s logical.Storage, r *keyRecord) error {
	e, err := logical.StorageEntryJSON(keyStoragePrefix+r.KeyID, r)
	if err != nil {
		return err
	}
	e.SealWrap = r.SecretKey != nil
	r.prepare()
	if err := s.Put(ctx, e); err != nil {
		b.cache.drop(r.KeyID)
		return fmt.Errorf("writing key record %s: %w", r.KeyID, err)
	}
	b.cache.put(r.KeyID, r)
	return nil
}

// indexEntry is the key index entry of a key.
func indexEntry(role, env, keyID string) string {
	return keyIndexPrefix + role + "/" + env + "/" + keyID
}

func (b *backend) writeIndex(ctx context.Context, s logical.Storage, r *keyRecord) error {
	if err := s.Put(ctx, &logical.StorageEntry{Key: indexEntry(r.Role, r.Environment, r.KeyID), Value: []byte{}}); err != nil {
		return fmt.Errorf("writing key index: %w", err)
	}
	return nil
}

// indexEntries are every index entry a key may have: what tidy deletes.
func indexEntries(r *keyRecord) []string {
	return []string{
		indexEntry(r.Role, r.Environment, r.KeyID),
		anomalyIndexPrefix + r.KeyID,
	}
}

// roleKeyIDs lists the key_ids indexed under a role, sorted.
func roleKeyIDs(ctx context.Context, s logical.Storage, role string) ([]string, error) {
	var ids []string
	err := eachRoleIndexDir(ctx, s, role, func(_ string, more []string) error {
		ids = append(ids, more...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return sortedUnique(ids), nil
}

// eachRoleIndexDir lists the key index under a role one environment at a
// time, handing f each folder (keyIndexPrefix + role/env/) and the key_ids
// in it.
func eachRoleIndexDir(ctx context.Context, s logical.Storage, role string, f func(dir string, ids []string) error) error {
	envs, err := s.List(ctx, keyIndexPrefix+role+"/")
	if err != nil {
		return err
	}
	// List names folders with their trailing slash: env is "prod/".
	for _, env := range envs {
		if err := ctx.Err(); err != nil {
			return err
		}
		dir := keyIndexPrefix + role + "/" + env
		ids, err := s.List(ctx, dir)
		if err != nil {
			return err
		}
		if err := f(dir, ids); err != nil {
			return err
		}
	}
	return nil
}

// environmentKeyIDs lists the key_ids indexed under an environment, sorted.
// It lists once per role that ever had keys: roles are few, keys many.
func environmentKeyIDs(ctx context.Context, s logical.Storage, env string) ([]string, error) {
	var ids []string
	roles, err := s.List(ctx, keyIndexPrefix)
	if err != nil {
		return nil, err
	}
	for _, role := range roles { // role is "name/", as above
		more, err := s.List(ctx, keyIndexPrefix+role+env+"/")
		if err != nil {
			return nil, err
		}
		ids = append(ids, more...)
	}
	return sortedUnique(ids), nil
}

func sortedUnique(ids []string) []string {
	slices.Sort(ids)
	return slices.Compact(ids)
}
