package vaultplugin

import (
	"context"
	"time"

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
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.UpdateOperation: &framework.PathOperation{
				Callback: strict(b.pathRotate),
				Summary:  "Issue a successor key and retire this one after a grace period.",
			},
		},
		HelpSynopsis: "Rotate a key with overlap.",
		HelpDescription: `Issues a successor with the same role, environment, scopes, metadata and key
type, as a new leased secret, and shortens the old key to the grace period
(default 0: revoked at once). Both verify during the grace period; afterwards
only the successor does.`,
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
	if st := old.status(now); st != statusActive {
		return respond(badField("key_id", "key %s is %s; issue a new key from its role instead", keyID, st))
	}
	// A key has at most one successor: a second rotation during the grace
	// period would fork the lineage and, since a key in its grace no longer
	// holds a max_active_keys slot, add a key beyond the cap.
	if old.RotatedTo != "" {
		return respond(badField("key_id", "key %s was already rotated to %s; rotate that key instead", keyID, old.RotatedTo))
	}
	cfg, err := b.configForIssue(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	t := keyTemplate{
		roleName:    old.Role,
		environment: old.Environment,
		scopes:      old.Scopes,
		keyType:     old.KeyType,
		cidrs:       old.AllowedCIDRs,
		metadata:    old.Metadata,
		rateLimit:   old.RateLimit,
		rateBurst:   old.RateBurst,
		recvWindow:  old.RecvWindow,
		anomaly:     old.anomalyPolicy,
		name:        old.Name,
		ttl:         old.TTL,
		maxTTL:      old.MaxExpiresAt.Sub(old.CreatedAt),
		rotatedFrom: old.KeyID,
	}
	if pk := d.Get("public_key").(string); pk != "" {
		if old.KeyType != keyTypeEd25519 {
			return respond(badField("public_key", "only ed25519 keys take a public_key (this key is %s)", old.KeyType))
		}
		if _, err := parseEd25519PublicKey(pk); err != nil {
			return respond(badField("public_key", "%v", err))
		}
		t.publicKey = pk
	}
	resp, succ, err := b.issue(ctx, req, cfg, t)
	if err != nil {
		return respond(err)
	}

	// Retire the old key: revoked now, or shortened to the grace period.
	// Shortening max_expires_at too keeps a renewal from undoing it.
	old.RotatedTo = succ.KeyID
	if reason == "" {
		reason = "rotated to " + succ.KeyID
	}
	// The old key is revoked when the grace ends (now, by default), unless
	// it expires before that; either way no renewal can take it further.
	if end := now.Add(grace); end.Before(old.ExpiresAt) {
		old.RevokedAt, old.RevokedBy, old.RevokeReason = end, requester(req), reason
		old.MaxExpiresAt = end
	} else {
		old.MaxExpiresAt = old.ExpiresAt
	}
	if grace == 0 {
		b.limiter.drop(keyID)
	}
	if err := b.putKey(ctx, req.Storage, old); err != nil {
		return nil, err
	}
	ev := revocationEvent{KeyID: old.KeyID, Kind: eventRotated, At: now, ExpiresAt: old.end()}
	if old.status(now) == statusRevoked {
		ev.Kind, ev.ExpiresAt = eventRevoked, time.Time{}
	}
	if err := b.recordEvent(ctx, req.Storage, ev); err != nil {
		return nil, err
	}
	resp.Data["previous_key_id"] = old.KeyID
	resp.Data["previous_expires_at"] = formatTime(old.end())
	return resp, nil
}
