package vaultplugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"
)

func pathRotate(b *backend) []*framework.Path {
	return []*framework.Path{{
		Pattern: "keys/" + framework.GenericNameRegex("key_id") + "/rotate$",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: operationPrefix,
			OperationVerb:   "rotate",
			OperationSuffix: "key",
		},
		Fields: map[string]*framework.FieldSchema{
			"key_id": keyIDField(),
			"grace": {
				Type:        framework.TypeDurationSecond,
				Description: "How long the old key keeps verifying after rotation (never past its own expiry). 0 revokes it now.",
			},
			"public_key": {
				Type:        framework.TypeString,
				Description: "ed25519 keys with a client-held private key: the successor's public key (PEM).",
			},
			"reason": reasonField(),
			"role": {
				Type:        framework.TypeString,
				Description: "Optional: the key's role. When given it must be the key's role, or the rotation is refused; a policy can require it to pin rotation to one role.",
			},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.UpdateOperation: &framework.PathOperation{
				Callback:  strict(b.pathRotate),
				Responses: okResponse("The successor, as a leased secret, and the key it replaces.", rotateResponseFields),
				Summary:   "Issue a successor key and retire this one after a grace period.",
			},
		},
		HelpSynopsis: "Rotate a key with overlap.",
		HelpDescription: `Issues a successor, as a new leased secret, under the role's current policy,
and shortens the old key to the grace period (default 0: revoked at once).
Both verify during the grace period; afterwards only the successor does.

The successor takes from the role as it is now: key_type, ttl and max_ttl
(counted from the rotation, so chained rotations never outlive the role's
max_ttl), rate limits, recv_window and anomaly policy. It keeps the old
key's narrowing: its scopes are the role's current scopes that the old key
had, its allowed_cidrs the old key's while they lie inside the role's
(otherwise the role's), its labels the role's plus the old key's own
additions (never overriding the role's), and its name. A key whose role was
deleted, whose role moved to another environment or no longer grants any of
its scopes, or that is suspended, revoked, expired or already rotated, is
refused with a 400.

To allow a token to rotate only the keys of one role, require the "role"
parameter in its policy and pin its value:

  path "cryptokeys/keys/+/rotate" {
    capabilities        = ["update"]
    required_parameters = ["role"]
    allowed_parameters  = { "role" = ["prod-trader"], "grace" = [], "reason" = [], "public_key" = [] }
  }

A rotation is all or nothing: the successor is written under a write-ahead
log entry that Vault's rollback uses to delete it if the rotation stops half
way.`,
	}}
}

func (b *backend) pathRotate(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	keyID, err := keyIDFrom(d)
	if err != nil {
		return respond(err)
	}
	grace := time.Duration(d.Get("grace").(int)) * time.Second
	if grace < 0 {
		return respond(badField("grace", "must not be negative"))
	}
	reason, err := reasonFrom(d)
	if err != nil {
		return respond(err)
	}
	wantRole := d.Get("role").(string)

	// A rotation swaps the old key's max_active_keys slot for its
	// successor's (see countLiveKeys), so it takes the role's lock, as creds
	// does, before the key's: a concurrent issue's count sees either both
	// keys before the swap or both after it, never neither. Locks go role
	// first, then key; a record's role never changes, so it can be read
	// (from the cache) before locking.
	peek, err := b.getKey(ctx, req.Storage, keyID)
	if err != nil {
		return nil, err
	}
	if peek == nil {
		return respond(badField("key_id", "no key %s in this mount", keyID))
	}
	if wantRole != "" && wantRole != peek.Role {
		// Said the same way as a missing key: a token pinned to one role
		// learns nothing about another role's keys.
		return respond(badField("role", "key %s is not a key of role %q", keyID, printable(wantRole)))
	}
	roleLock := locksutil.LockForKey(b.roleLocks, peek.Role)
	roleLock.Lock()
	defer roleLock.Unlock()
	lock := locksutil.LockForKey(b.keyLocks, keyID)
	lock.Lock()
	defer lock.Unlock()

	old, err := b.loadKey(ctx, req.Storage, keyID)
	if err != nil {
		return nil, err
	}
	if old == nil {
		return respond(badField("key_id", "no key %s in this mount", keyID))
	}
	now := b.now()
	// A suspended key is refused too (stored, or decided on this node and
	// not yet flushed): its successor would carry the key's use on, from
	// whoever holds it, past the suspension.
	switch st, _ := b.keyStatus(old, now); st {
	case statusActive:
	case statusSuspended:
		return respond(badField("key_id", "key %s is suspended for anomalous use; resume it (keys/%s/resume) before rotating it", keyID, keyID))
	default:
		return respond(badField("key_id", "key %s is %s; issue a new key from its role instead", keyID, st))
	}
	// A key has at most one successor: a second rotation during the grace
	// period would fork the lineage and, since a key in its grace no longer
	// holds a max_active_keys slot, add a key beyond the cap.
	if old.RotatedTo != "" {
		return respond(badField("key_id", "key %s was already rotated to %s; rotate that key instead", keyID, old.RotatedTo))
	}
	r, err := b.getRole(ctx, req.Storage, old.Role)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return respond(badField("key_id", "the role of key %s, %q, no longer exists: a successor is issued under its role's current policy; issue a new key from an existing role instead", keyID, old.Role))
	}
	cfg, err := b.configForIssue(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	t, err := rotationTemplate(old, r, cfg)
	if err != nil {
		return respond(err)
	}
	if pk := d.Get("public_key").(string); pk != "" {
		if t.keyType != keyTypeEd25519 {
			return respond(badField("public_key", "only ed25519 keys take a public_key (the successor is %s)", t.keyType))
		}
		if _, err := parseEd25519PublicKey(pk); err != nil {
			return respond(badField("public_key", "%v", err))
		}
		t.publicKey = pk
	}
	// Successors an earlier attempt left behind (its clean-up failed, or
	// the node stopped mid-rotation) go first, so no retry adds a key.
	if err := b.rollBackRotationsOf(ctx, req.Storage, keyID); err != nil {
		return nil, err
	}
	resp, succ, err := b.newKey(req, cfg, t)
	if err != nil {
		return respond(err)
	}
	if err := b.stampIssue(ctx, req.Storage, succ, old); err != nil {
		return nil, err
	}

	// The successor is written before the old key names it. Until the old
	// key's record does, a write-ahead log entry names both, so a rotation
	// that stops half way is rolled back (walRollback): the successor,
	// whose lease was never handed out, is deleted.
	walID, err := framework.PutWAL(ctx, req.Storage, walRotationKind, &rotationWAL{
		OldKeyID: old.KeyID, NewKeyID: succ.KeyID, Role: succ.Role, Environment: succ.Environment,
	})
	if err != nil {
		return nil, fmt.Errorf("writing the rotation's write-ahead log: %w", err)
	}
	if err := b.storeNewKey(ctx, req.Storage, succ); err != nil {
		b.abortRotation(ctx, req.Storage, walID, succ)
		return nil, err
	}

	// Retire the old key: revoked now, or shortened to the grace period.
	// Shortening max_expires_at too keeps a renewal from undoing it.
	prev := *old
	old.RotatedTo = succ.KeyID
	if reason == "" {
		reason = "rotated to " + succ.KeyID
	}
	// The old key is revoked when the grace ends (now, by default), unless
	// it expires before that; either way no renewal can take it further.
	if end := now.Add(grace); end.Before(old.ExpiresAt) {
		old.RevokedAt = end
		old.editNotes(func(n *KeyNotes) { n.RevokedBy, n.RevokeReason = requester(req), reason })
		old.MaxExpiresAt = end
		old.Ended = grace == 0
	} else {
		old.MaxExpiresAt = old.ExpiresAt
	}
	if err := b.putKey(ctx, req.Storage, old); err != nil {
		// The write may have committed: storage decides.
		stored, rerr := b.loadKey(ctx, req.Storage, keyID)
		switch {
		case rerr != nil:
			// Unknown: the log entry stays, and its rollback keeps the
			// successor exactly when the old key names it.
			return nil, err
		case stored == nil || stored.RotatedTo != succ.KeyID:
			b.abortRotation(ctx, req.Storage, walID, succ)
			return nil, err
		}
		// Committed after all: carry on.
		b.cache.put(keyID, stored)
		old = stored
	}
	if grace == 0 {
		b.limiter.drop(keyID)
	}
	ev := revocationEvent{KeyID: old.KeyID, Kind: eventRotated, ExpiresAt: old.end()}
	if old.status(b.now()) == statusRevoked {
		ev.Kind, ev.ExpiresAt = eventRevoked, time.Time{}
	}
	if err := b.recordEvent(ctx, req.Storage, ev); err != nil {
		// Local verifiers would not hear of the rotation, and the caller
		// gets no successor: undo it, so a retry starts afresh. (The
		// event stays pending in the feed and is written later; it only
		// makes verifiers drop the old key from their caches and ask.)
		if perr := b.putKey(ctx, req.Storage, &prev); perr == nil {
			b.abortRotation(ctx, req.Storage, walID, succ)
		} else {
			b.Logger().Warn("undoing a rotation whose feed event failed", "key_id", keyID, "successor", succ.KeyID, "error", perr)
		}
		return nil, err
	}
	if err := framework.DeleteWAL(ctx, req.Storage, walID); err != nil {
		// Harmless: the rollback finds the old key naming the successor
		// and only deletes the entry.
		b.Logger().Warn("deleting a rotation's write-ahead log entry", "wal_id", walID, "error", err)
	}
	resp.Data["previous_key_id"] = old.KeyID
	resp.Data["previous_expires_at"] = formatTime(old.end())
	return resp, nil
}

// rotationTemplate is a successor's template: the role's current policy,
// narrowed as the old key was narrowed.
func rotationTemplate(old *keyRecord, r *role, cfg *engineConfig) (keyTemplate, error) {
	if r.Environment != old.Environment {
		return keyTemplate{}, badField("key_id", "role %q now issues keys for environment %q and key %s is of %q: a rotation never moves a key to another environment; issue a new key from the role", old.Role, r.Environment, old.KeyID, old.Environment)
	}
	var fe *fieldError
	if err := validateEnvironment("key_id", r.Environment, cfg.Environments); errors.As(err, &fe) {
		return keyTemplate{}, badField("key_id", "key %s cannot be rotated: its environment %s", old.KeyID, fe.rule)
	}
	t := templateFromRole(old.Role, r)
	t.name = old.Name
	t.rotatedFrom = old.KeyID
	// Scopes: what the role grants now, of what the old key had.
	t.scopes = nil
	for _, s := range old.Scopes {
		if slices.Contains(r.Scopes, s) {
			t.scopes = append(t.scopes, s)
		}
	}
	if len(old.Scopes) > 0 && len(t.scopes) == 0 {
		return keyTemplate{}, badField("key_id", "role %q no longer grants any of key %s's scopes (%s); issue a new key from the role", old.Role, old.KeyID, strings.Join(old.Scopes, ", "))
	}
	// Source CIDRs: the old key's narrowing while it lies inside what the
	// role allows now; otherwise the role's.
	if len(old.AllowedCIDRs) > 0 && cidrsWithin("allowed_cidrs", old.AllowedCIDRs, r.AllowedCIDRs) == nil {
		t.cidrs = old.AllowedCIDRs
	}
	// Labels: the role's, plus the old key's own additions, which never
	// override the role's.
	labels := maps.Clone(r.Labels)
	for k, v := range old.Labels {
		if _, set := labels[k]; !set {
			if labels == nil {
				labels = map[string]string{}
			}
			labels[k] = v
		}
	}
	if len(labels) > wire.MaxLabels {
		return keyTemplate{}, badField("key_id", "key %s's labels and its role's together exceed %d entries; issue a new key from the role", old.KeyID, wire.MaxLabels)
	}
	t.labels = labels
	return t, nil
}

const (
	// walRotationKind names the write-ahead log entries of rotations.
	walRotationKind = "rotation"
	// walRollbackMinAge is how old a rotation's log entry must be before
	// Vault's rollback (about once a minute, on the active node) undoes it.
	// A rotation takes milliseconds and the rollback takes the same locks,
	// so an entry this old belongs to a rotation that stopped.
	walRollbackMinAge = time.Minute
)

// rotationWAL is the write-ahead log entry of a rotation in progress: the
// successor is kept only if the old key's record names it.
type rotationWAL struct {
	OldKeyID    string `json:"old_key_id"`
	NewKeyID    string `json:"new_key_id"`
	Role        string `json:"role"`
	Environment string `json:"environment"`
}

func decodeRotationWAL(data any) (*rotationWAL, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return nil, err
	}
	w := new(rotationWAL)
	if err := json.Unmarshal(raw, w); err != nil {
		return nil, fmt.Errorf("decoding a rotation's write-ahead log entry: %w", err)
	}
	if w.OldKeyID == "" || w.NewKeyID == "" {
		return nil, fmt.Errorf("rotation write-ahead log entry names no keys")
	}
	return w, nil
}

// walRollback is the framework's WALRollback: Vault calls it for log
// entries left by rotations that did not finish (a crash, or a failed
// write whose clean-up failed too).
func (b *backend) walRollback(ctx context.Context, req *logical.Request, kind string, data any) error {
	if kind != walRotationKind {
		return nil // nothing this engine knows how to undo; the entry goes
	}
	w, err := decodeRotationWAL(data)
	if err != nil {
		b.Logger().Warn("dropping an unreadable write-ahead log entry", "error", err)
		return nil
	}
	roleLock := locksutil.LockForKey(b.roleLocks, w.Role)
	roleLock.Lock()
	defer roleLock.Unlock()
	lock := locksutil.LockForKey(b.keyLocks, w.OldKeyID)
	lock.Lock()
	defer lock.Unlock()
	return b.rollBackRotation(ctx, req.Storage, w)
}

// rollBackRotation deletes a logged rotation's successor unless the old key
// names it (then the rotation finished and its lease was handed out). The
// caller holds the role's lock and the old key's.
func (b *backend) rollBackRotation(ctx context.Context, s logical.Storage, w *rotationWAL) error {
	old, err := b.loadKey(ctx, s, w.OldKeyID)
	if err != nil {
		return err
	}
	// A missing old key (tidied) can no longer say whether the rotation
	// finished: the successor is kept then, rather than risk deleting a
	// key whose lease is out. Unleased, it ends at its own expiry.
	if old == nil || old.RotatedTo == w.NewKeyID {
		return nil
	}
	b.Logger().Info("rolling back an unfinished rotation", "key_id", w.OldKeyID, "successor", w.NewKeyID)
	return b.deleteNewKey(ctx, s, &keyRecord{KeyID: w.NewKeyID, Role: w.Role, Environment: w.Environment})
}

// rollBackRotationsOf rolls back, now, every unfinished rotation of keyID
// in the log. The caller holds the role's lock and the key's.
func (b *backend) rollBackRotationsOf(ctx context.Context, s logical.Storage, keyID string) error {
	ids, err := framework.ListWAL(ctx, s)
	if err != nil {
		return err
	}
	for _, id := range ids {
		e, err := framework.GetWAL(ctx, s, id)
		if err != nil {
			return err
		}
		if e == nil || e.Kind != walRotationKind {
			continue
		}
		w, err := decodeRotationWAL(e.Data)
		if err != nil || w.OldKeyID != keyID {
			continue
		}
		if err := b.rollBackRotation(ctx, s, w); err != nil {
			return err
		}
		if err := framework.DeleteWAL(ctx, s, id); err != nil {
			return err
		}
	}
	return nil
}

// abortRotation deletes a successor whose rotation failed, and its log
// entry once that worked. Best effort: what it cannot delete, the rollback
// (or the next rotation of the key) deletes.
func (b *backend) abortRotation(ctx context.Context, s logical.Storage, walID string, succ *keyRecord) {
	if b.deleteNewKey(ctx, s, succ) != nil {
		return
	}
	if err := framework.DeleteWAL(ctx, s, walID); err != nil {
		b.Logger().Warn("deleting a rotation's write-ahead log entry", "wal_id", walID, "error", err)
	}
}
