package vaultplugin

import (
	"context"
	"crypto/hmac"
	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"

	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// maxLeakedText bounds revoke/leaked input: a paste or a log excerpt, not a
// whole disk (the scanner sends only the lines it found).
const maxLeakedText = 4 << 20

func bulkHelp(what, note string) string {
	return `Incident playbook: revokes every live key of the ` + what + ` (` + note + `) in one
storage write, a watermark: from the moment this answers, every key of the
` + what + ` issued at or before revoked_before is refused by verify (REVOKED) and
shown revoked by keys/<key_id> (revoked_at = revoked_before, revoked_by,
revoke_reason, revoke_job), and one feed event (kind revoked_` + what + `) makes
local verifiers drop the ` + what + `'s cached keys. Keys issued afterwards are
unaffected. A job then writes each key's record and feed event in the
background, in pages, resuming after a restart or failover: the reply names
it (job_id, status_path revoke/jobs/<job_id>) with its progress (state,
done, left, revoked, skipped, errors); a job done within the request also
lists key_ids. The keys' Vault leases are left to end or be revoked (their
revocation then finds the key revoked).`
}

func pathRevoke(b *backend) []*framework.Path {
	return append(pathBulkJobs(b), []*framework.Path{
		{
			Pattern: "revoke/role/" + framework.MatchAllRegex("role"),
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix,
				OperationVerb:   "revoke",
				OperationSuffix: "role-keys",
			},
			Fields: map[string]*framework.FieldSchema{
				"role":   {Type: framework.TypeString, Description: "Role whose live keys are revoked.", Required: true},
				"reason": reasonField(),
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: &framework.PathOperation{
					Callback:  strict(b.pathRevokeRole),
					Responses: okResponse("The bulk revocation job, finished inline or going on in the background.", bulkRevokeResponseFields),
					Summary:   "Revoke every live key of a role (incident response).",
				},
			},
			HelpSynopsis:    "Revoke every live key issued from a role.",
			HelpDescription: bulkHelp("role", "also when the role itself was deleted"),
		},
		{
			Pattern: "revoke/environment/" + framework.MatchAllRegex("environment"),
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix,
				OperationVerb:   "revoke",
				OperationSuffix: "environment-keys",
			},
			Fields: map[string]*framework.FieldSchema{
				"environment": {Type: framework.TypeString, Description: "Environment whose live keys are revoked.", Required: true},
				"reason":      reasonField(),
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: &framework.PathOperation{
					Callback:  strict(b.pathRevokeEnvironment),
					Responses: okResponse("The bulk revocation job, finished inline or going on in the background.", bulkRevokeResponseFields),
					Summary:   "Revoke every live key of an environment (incident response).",
				},
			},
			HelpSynopsis:    "Revoke every live key of an environment.",
			HelpDescription: bulkHelp("environment", "across every role"),
		},
		{
			Pattern: "revoke/leaked",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix,
				OperationVerb:   "revoke",
				OperationSuffix: "leaked-keys",
			},
			Fields: map[string]*framework.FieldSchema{
				"text":   {Type: framework.TypeString, Description: "Any text (a file, a paste, a log) that may contain keys.", Required: true},
				"reason": reasonField(),
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: &framework.PathOperation{
					Callback:  strict(b.pathRevokeLeaked),
					Responses: okResponse("What was found in the text and revoked.", revokeLeakedResponseFields),
					Summary:   "Revoke every key of this mount found in a text.",
				},
			},
			HelpSynopsis: "Revoke keys found in leaked text.",
			HelpDescription: `Finds every well-formed key with a valid checksum in "text", and revokes
those that are keys of this mount (the whole key must match, not just its
key_id). Replies with the key_ids revoked and counts of keys unknown,
already revoked, and look-alikes with a bad checksum. Never echoes key
material.`,
		},
	}...)
}

func (b *backend) pathRevokeRole(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	role := d.Get("role").(string)
	if err := validateName("role", role); err != nil {
		return respond(err)
	}
	reason, err := reasonFrom(d)
	if err != nil {
		return respond(err)
	}
	return b.startBulk(ctx, req, scopeRole, role, reason)
}

func (b *backend) pathRevokeEnvironment(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	env := d.Get("environment").(string)
	if err := validateEnvironment("environment", env, nil); err != nil {
		return respond(err)
	}
	reason, err := reasonFrom(d)
	if err != nil {
		return respond(err)
	}
	return b.startBulk(ctx, req, scopeEnv, env, reason)
}

func (b *backend) pathRevokeLeaked(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	text := d.Get("text").(string)
	if text == "" {
		return respond(badField("text", "is required"))
	}
	if len(text) > maxLeakedText {
		return respond(badField("text", "must be at most %d bytes; send the lines that hold keys", maxLeakedText))
	}
	reason, err := reasonFrom(d)
	if err != nil {
		return respond(err)
	}
	if reason == "" {
		reason = "leaked"
	}
	cfg, err := b.getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	by := requester(req)
	revoked := []string{}
	unknown, already, badChecksum := 0, 0, 0
	seen := map[string]bool{}
	for _, m := range keyformat.Find([]byte(text)) {
		if !m.ChecksumOK {
			badChecksum++
			continue
		}
		raw := m.Key.Raw()
		if seen[raw] {
			continue
		}
		seen[raw] = true
		// Only the whole key proves a leak: key_ids are public, so a
		// forged string with a valid checksum must not revoke anything.
		rec, err := b.getKey(ctx, req.Storage, m.Key.KeyID)
		if err != nil {
			return nil, err
		}
		if rec == nil || len(cfg.Pepper) == 0 || m.Key.Prefix != rec.Prefix || !hmac.Equal(rec.Hash, keyHash(cfg.Pepper, raw)) {
			unknown++
			continue
		}
		ok, err := b.revokeKey(ctx, req.Storage, rec.KeyID, by, reason, false)
		if err != nil {
			return nil, err
		}
		if ok {
			revoked = append(revoked, rec.KeyID)
		} else {
			already++
		}
	}
	if len(revoked) > 0 {
		b.Logger().Warn("revoked leaked keys", "count", len(revoked), "key_ids", revoked, "by", by)
	}
	reply := wire.LeakedReply{Revoked: revoked, RevokedCount: len(revoked), UnknownCount: unknown, AlreadyRevoked: already, BadChecksum: badChecksum}
	return &logical.Response{Data: reply.Data()}, nil
}
