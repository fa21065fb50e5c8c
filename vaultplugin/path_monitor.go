package vaultplugin

import (
	"context"
	"slices"
	"sort"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"
)

func pathMonitor(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "keys/" + framework.GenericNameRegex("key_id") + "/resume$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix,
				OperationVerb:   "resume",
				OperationSuffix: "key",
			},
			Fields: map[string]*framework.FieldSchema{
				"key_id": keyIDField(),
				"reason": {Type: framework.TypeString, Description: "Why the suspension is lifted; recorded with who and when."},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: &framework.PathOperation{
					Callback:  strict(b.pathResume),
					Responses: okResponse("The key, its suspension lifted.", keyResponseFields),
					Summary:   "Lift an anomaly suspension.",
				},
			},
			HelpSynopsis:    "Lift a key's anomaly suspension.",
			HelpDescription: "A key whose role says on_anomaly=suspend verifies as SUSPENDED after anomalous use until this path is written. Its anomaly history is kept.",
		},
		{
			Pattern: "monitor/anomalies",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix,
				OperationVerb:   "list",
				OperationSuffix: "anomalies",
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback:  b.pathAnomalies,
					Responses: listed("key_ids of flagged keys.", "Per key: role, environment, status, suspended, anomalies."),
					Summary:   "List keys flagged for anomalous use.",
				},
			},
			HelpSynopsis:    "List flagged keys.",
			HelpDescription: "Lists keys with recorded anomalies (rate above anomaly_rate, new source addresses), with their role, environment, whether they are suspended, and each anomaly's kind, first and last sighting and count. Findings not yet flushed on this node are included.",
		},
	}
}

func (b *backend) pathResume(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	keyID, err := keyIDFrom(d)
	if err != nil {
		return respond(err)
	}
	reason, err := reasonFrom(d)
	if err != nil {
		return respond(err)
	}
	lock := locksutil.LockForKey(b.keyLocks, keyID)
	lock.Lock()
	defer lock.Unlock()
	rec, err := b.loadKey(ctx, req.Storage, keyID)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return respond(badField("key_id", "no key %s in this mount", keyID))
	}
	// Keep this node's unflushed findings in the history, drop the rest.
	pending, _ := b.anomalies.peek(rec)
	if len(pending) > 0 {
		rec.Anomalies = mergeAnomalies(rec.Anomalies, anomalyMap(pending))
	}
	b.anomalies.forget(keyID)
	rec.SuspendedAt = time.Time{}
	rec.editNotes(func(n *KeyNotes) {
		n.SuspendReason = ""
		n.ResumedAt, n.ResumedBy, n.ResumeReason = b.now(), requester(req), reason
	})
	rec.Resumes++
	if err := b.putKey(ctx, req.Storage, rec); err != nil {
		return nil, err
	}
	return &logical.Response{Data: b.keyView(rec)}, nil
}

func (b *backend) pathAnomalies(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	ids, err := req.Storage.List(ctx, anomalyIndexPrefix)
	if err != nil {
		return nil, err
	}
	for _, id := range b.anomalies.pendingKeys() {
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	keys := make([]string, 0, len(ids))
	info := make(map[string]any, len(ids))
	for _, id := range ids {
		rec, err := b.getKey(ctx, req.Storage, id)
		if err != nil {
			return nil, err
		}
		if rec == nil {
			continue
		}
		v := b.keyView(rec)
		keys = append(keys, id)
		info[id] = map[string]any{
			"role":        rec.Role,
			"environment": rec.Environment,
			"status":      v["status"],
			"suspended":   v["suspended"],
			"anomalies":   v["anomalies"],
		}
	}
	return &logical.Response{Data: map[string]any{"keys": keys, "key_info": info}}, nil
}
