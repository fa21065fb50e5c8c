package vaultplugin

import (
	"context"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

const (
	revocationPrefix = "revocations/"
	// feedRetention is how long revocation events are kept for local
	// verifiers. A verifier whose cursor is older must drop its cache.
	feedRetention = 24 * time.Hour
	// maxFeedEvents bounds one reply; the verifier asks again from the cursor.
	maxFeedEvents = 1000

	// The kinds of event are the contract's.
	eventRevoked   = wire.KindRevoked
	eventRotated   = wire.KindRotated
	eventSuspended = wire.KindSuspended
)

// revocationEvent tells local verifiers to stop trusting a cached key (or,
// kind flush, every cached key). Stored at revocations/<seq> (see feed.go).
type revocationEvent struct {
	Seq       uint64    `json:"seq"`
	KeyID     string    `json:"key_id"`
	Kind      string    `json:"kind"`
	At        time.Time `json:"at"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

func pathRevocations(b *backend) []*framework.Path {
	return []*framework.Path{{
		Pattern: "revocations",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: operationPrefix,
			OperationVerb:   "read",
			OperationSuffix: "revocations",
		},
		Fields: map[string]*framework.FieldSchema{
			"since": {Type: framework.TypeString, Description: "Cursor from the previous reply; empty for the current position only.", Query: true},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback: b.pathRevocationsRead,
				Summary:  "Keys revoked, rotated out or suspended since a cursor.",
			},
		},
		HelpSynopsis: "Feed of revocations for local verifiers.",
		HelpDescription: `Returns the events written since "since" and a cursor to pass next time.
Events are numbered in the order they were written (1, 2, 3 ... with no
holes); each is {seq, key_id, kind, at, expires_at}, kind one of revoked,
rotated (expires_at: the end of its grace), suspended, or flush (key_id
empty: drop every cached key). A reply holds at most 1000 events, contiguous
from the cursor's seq + 1; ask again with its cursor for more. With no
"since" it returns no events and the current cursor.

The cursor is "<epoch>.<seq>": epoch names this mount, seq the last event
the reply covers. "reset" is true when the cursor cannot be continued (of
another mount, of an earlier engine version, ahead of this feed, or older
than the feed keeps: events are kept 24h): the caller must drop everything
it cached and continue from the reply's cursor. A caller that sees the first
numbered event's seq differ from its cursor's seq + 1 must do the same.

Suspensions this node decided but has not yet written are sent with every
reply, with seq 0, until they are written.`,
	}}
}

func (b *backend) pathRevocationsRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	r, err := b.readFeed(ctx, req.Storage, d.Get("since").(string), maxFeedEvents)
	if err != nil {
		return respond(err)
	}
	events := feedEventsData(r.events)
	// Suspensions this node decided but has not flushed yet: verify cannot
	// write them, so they travel in memory until then, out of the sequence
	// (seq 0). Dropping a cached key twice is harmless.
	for _, id := range b.anomalies.suspendedKeys() {
		events = append(events, map[string]any{"seq": uint64(0), "key_id": id, "kind": eventSuspended, "at": "", "expires_at": ""})
	}
	return &logical.Response{Data: map[string]any{"events": events, "cursor": r.cursor.String(), "reset": r.reset}}, nil
}
