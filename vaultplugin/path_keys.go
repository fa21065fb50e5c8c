package vaultplugin

import (
	"context"

	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func keyIDField() *framework.FieldSchema {
	return &framework.FieldSchema{
		Type:        framework.TypeString,
		Description: "The key's public identifier (12 base62 characters, the part after the environment).",
		Required:    true,
	}
}

func reasonField() *framework.FieldSchema {
	return &framework.FieldSchema{
		Type:        framework.TypeString,
		Description: "Why the key is revoked; recorded with who and when.",
	}
}

func pathKeys(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "keys/?$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix,
				OperationSuffix: "keys",
				Navigation:      true,
				ItemType:        "Key",
			},
			Fields: map[string]*framework.FieldSchema{
				"role":        {Type: framework.TypeString, Description: "Only keys issued from this role.", Query: true},
				"environment": {Type: framework.TypeString, Description: "Only keys of this environment.", Query: true},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{
					Callback:  b.pathKeysList,
					Responses: listed("key_ids.", "Per key: name, role, environment, status, expires_at."),
					Summary:   "List key_ids, with each key's role, environment, status and expiry.",
				},
			},
			HelpSynopsis:    "List issued keys (metadata only).",
			HelpDescription: "Lists key_ids, optionally filtered by role or environment. key_info carries each key's name, role, environment, status and expires_at. Secrets are never listed.",
		},
		{
			Pattern: "keys/" + framework.GenericNameRegex("key_id") + "$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix,
				OperationSuffix: "key",
				ItemType:        "Key",
			},
			Fields: map[string]*framework.FieldSchema{
				"key_id": keyIDField(),
				"reason": reasonField(),
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback:  b.pathKeyRead,
					Responses: okResponse("The key's metadata, never its secret.", keyResponseFields),
					Summary:   "Read a key's metadata (never its secret).",
				},
				logical.DeleteOperation: &framework.PathOperation{
					Callback:  strict(b.pathKeyRevoke),
					Responses: noContent("Revoked (also when it was revoked, expired or gone already)."),
					Summary:   "Revoke a key now. Idempotent.",
					DisplayAttrs: &framework.DisplayAttributes{
						OperationVerb: "revoke",
					},
				},
			},
			HelpSynopsis: "Read or revoke one key.",
			HelpDescription: `Read returns the key's metadata: role, environment, scopes, key type, who
created it and when, expiry, revocation (when, by whom, why) and usage
(last_used_at, use_count). Delete revokes the key at once; verify refuses it
from then on. Revoking a key that is already revoked or gone succeeds.`,
		},
	}
}

func (b *backend) pathKeysList(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	roleName := d.Get("role").(string)
	env := d.Get("environment").(string)
	var ids []string
	var err error
	switch {
	case roleName != "":
		if err := validateName("role", roleName); err != nil {
			return respond(err)
		}
		ids, err = roleKeyIDs(ctx, req.Storage, roleName)
	case env != "":
		if !keyformat.ValidEnvironment(env) {
			return respond(badField("environment", "%q must match [a-z][a-z0-9]{0,15}", printable(env)))
		}
		ids, err = environmentKeyIDs(ctx, req.Storage, env)
	default:
		ids, err = req.Storage.List(ctx, keyStoragePrefix)
	}
	if err != nil {
		return nil, err
	}
	now := b.now()
	keys := make([]string, 0, len(ids))
	info := make(map[string]any, len(ids))
	for _, id := range ids {
		rec, err := b.getKey(ctx, req.Storage, id)
		if err != nil {
			return nil, err
		}
		if rec == nil || (env != "" && rec.Environment != env) {
			continue
		}
		keys = append(keys, id)
		info[id] = map[string]any{
			"name":        rec.Name,
			"role":        rec.Role,
			"environment": rec.Environment,
			"status":      rec.status(now),
			"expires_at":  formatTime(rec.end()),
		}
	}
	return logical.ListResponseWithInfo(keys, info), nil
}

func (b *backend) pathKeyRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	keyID, err := keyIDFrom(d)
	if err != nil {
		return respond(err)
	}
	rec, err := b.getKey(ctx, req.Storage, keyID)
	if err != nil || rec == nil {
		return nil, err
	}
	return &logical.Response{Data: b.keyView(rec)}, nil
}

// keyIDFrom reads and checks the key_id path parameter.
func keyIDFrom(d *framework.FieldData) (string, error) {
	keyID := d.Get("key_id").(string)
	if !keyformat.ValidKeyID(keyID) {
		return "", badField("key_id", "must be 12 base62 characters")
	}
	return keyID, nil
}

// keyView is the public face of a record: everything but hash and secrets,
// with usage not yet flushed added in.
func (b *backend) keyView(rec *keyRecord) map[string]any {
	u := b.usage.pending(rec.KeyID)
	lastUsed, count, lastIP := rec.LastUsedAt, rec.UseCount+u.count, rec.LastSourceIP
	if u.last.After(lastUsed) {
		lastUsed, lastIP = u.last, u.sourceIP
	}
	out := map[string]any{
		"key_id":               rec.KeyID,
		"name":                 rec.Name,
		"role":                 rec.Role,
		"environment":          rec.Environment,
		"scopes":               nonNil(rec.Scopes),
		"key_type":             rec.KeyType,
		"allowed_cidrs":        nonNil(rec.AllowedCIDRs),
		"labels":               nonNilMap(rec.Labels),
		"status":               rec.status(b.now()),
		"created_at":           formatTime(rec.CreatedAt),
		"created_by":           rec.CreatedBy,
		"created_by_entity_id": rec.CreatedByEntityID,
		"expires_at":           formatTime(rec.end()),
		"max_expires_at":       formatTime(rec.MaxExpiresAt),
		"revoked_at":           formatTime(rec.RevokedAt),
		"revoked_by":           rec.notes().RevokedBy,
		"revoke_reason":        rec.notes().RevokeReason,
		"revoke_job":           rec.notes().RevokeJob,
		"rotated_from":         rec.RotatedFrom,
		"rotated_to":           rec.RotatedTo,
		"last_used_at":         formatTime(lastUsed),
		"last_source_ip":       lastIP,
		"use_count":            count,
	}
	if rec.PublicKey != "" {
		out["public_key"] = rec.PublicKey
	}
	found, suspendedAt := b.anomalies.peek(rec)
	anomalies := rec.Anomalies
	if len(found) > 0 {
		anomalies = mergeAnomalies(anomalies, anomalyMap(found))
	}
	if !rec.SuspendedAt.IsZero() {
		suspendedAt = rec.SuspendedAt
	}
	views := make([]map[string]any, 0, len(anomalies))
	for _, a := range anomalies {
		views = append(views, map[string]any{
			"kind": a.Kind, "first_seen": formatTime(a.FirstSeen), "last_seen": formatTime(a.LastSeen), "count": a.Count,
		})
	}
	out["anomalies"] = views
	out["suspended"] = !suspendedAt.IsZero()
	if out["suspended"] == true && out["status"] == statusActive {
		out["status"] = statusSuspended
	}
	out["suspended_at"] = formatTime(suspendedAt)
	notes := rec.notes()
	out["resumed_at"] = formatTime(notes.ResumedAt)
	out["resumed_by"] = notes.ResumedBy
	out["resume_reason"] = notes.ResumeReason
	out["source_ips"] = nonNil(appendSourceIPs(rec.SourceIPs, u.ips...))
	return out
}

func (b *backend) pathKeyRevoke(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	keyID, err := keyIDFrom(d)
	if err != nil {
		return respond(err)
	}
	reason, err := reasonFrom(d)
	if err != nil {
		return respond(err)
	}
	if reason == "" {
		reason = "revoked on request"
	}
	_, err = b.revokeKey(ctx, req.Storage, keyID, requester(req), reason, false)
	return nil, err
}

// requester names who made a request, for accountability records.
func requester(req *logical.Request) string {
	switch {
	case req.DisplayName != "" && req.EntityID != "":
		return req.DisplayName + " (entity " + req.EntityID + ")"
	case req.DisplayName != "":
		return req.DisplayName
	case req.EntityID != "":
		return "entity " + req.EntityID
	}
	return "unknown"
}
