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
	// Bulk revocations (bulk_job.go): key_id empty, role or environment
	// named, revoked_before the watermark. A verifier that does not know
	// the kind drops everything, as for any event naming no key.
	eventRevokedRole        = wire.KindRevokedRole
	eventRevokedEnvironment = wire.KindRevokedEnvironment
)

// revocationEvent tells local verifiers to stop trusting a cached key (or,
// kind flush, every cached key). Stored at revocations/<seq> (see feed.go).
type revocationEvent struct {
	Seq       uint64    `json:"seq"`
	KeyID     string    `json:"key_id"`
	Kind      string    `json:"kind"`
	At        time.Time `json:"at"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// Bulk revocation events only.
	Role        string    `json:"role,omitempty"`
	Environment string    `json:"environment,omitempty"`
	Before      time.Time `json:"revoked_before,omitzero"`
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
			"wait": {
				Type:        framework.TypeDurationSecond,
				Description: "With since: when nothing is newer than the cursor, hold the request up to this long (at most 60s) and answer as soon as an event is written. 0 answers at once.",
				Query:       true,
			},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback:  b.pathRevocationsRead,
				Responses: okResponse("Events after the cursor.", feedResponseFields),
				Summary:   "Keys revoked, rotated out or suspended since a cursor.",
			},
		},
		HelpSynopsis: "Feed of revocations for local verifiers.",
		HelpDescription: `Returns the events written since "since" and a cursor to pass next time.
Events are numbered in the order they were written (1, 2, 3 ... with no
holes); each is {seq, key_id, kind, at, expires_at}, kind one of revoked,
rotated (expires_at: the end of its grace), suspended, flush (key_id
empty: drop every cached key), revoked_role or revoked_environment (key_id
empty, with role or environment and revoked_before: drop every cached key
of that role or environment; a caller that does not know a kind drops
every cached key). A reply holds at most 1000 events, contiguous
from the cursor's seq + 1; ask again with its cursor for more. With no
"since" it returns no events and the current cursor.

The cursor is "<epoch>.<seq>": epoch names this mount, seq the last event
the reply covers. "reset" is true when the cursor cannot be continued (of
another mount, of an earlier engine version, ahead of this feed, or older
than the feed keeps: events are kept 24h): the caller must drop everything
it cached and continue from the reply's cursor. A caller that sees the first
numbered event's seq differ from its cursor's seq + 1 must do the same.

Suspensions this node decided but has not yet written are sent with every
reply, with seq 0, until they are written.

With "wait" (a blocking read, as Consul's blocking queries): when nothing is
newer than the cursor, the reply is held until an event is written on this
node (or reaches it through storage invalidation) or the wait ends, so a
verifier hears of a revocation at once instead of at its next poll. Replies
carry "wait_max" (seconds) so a caller can tell an engine that blocks from
one that does not.`,
	}}
}

// maxFeedWait bounds a blocking read, well inside Vault's default 90 s
// request timeout.
const maxFeedWait = 60 * time.Second

func (b *backend) pathRevocationsRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	since := d.Get("since").(string)
	wait := time.Duration(d.Get("wait").(int)) * time.Second
	if wait < 0 || wait > maxFeedWait {
		return respond(badField("wait", "must be from 0 to %s", maxFeedWait))
	}
	var deadline <-chan time.Time
	if wait > 0 && since != "" {
		t := time.NewTimer(wait)
		defer t.Stop()
		deadline = t.C
	}
	var r *feedRead
	for {
		// Taken before the read: an event written, or a suspension
		// decided, after it closes one of these, so none is missed
		// between the read and the wait.
		changed := b.feed.headChanged()
		decided := b.anomalies.suspensionDecided()
		var err error
		if r, err = b.readFeed(ctx, req.Storage, since, maxFeedEvents); err != nil {
			return respond(err)
		}
		// A suspension verify decides is not a feed event until the usage
		// flush writes it, so it is answered at once (below, seq 0).
		if deadline == nil || r.reset || len(r.events) > 0 || len(b.anomalies.suspendedKeys()) > 0 {
			break
		}
		if !waitForFeed(ctx, changed, decided, deadline) {
			break
		}
	}
	reply := wire.FeedReply{
		Events: make([]wire.FeedEvent, 0, len(r.events)), Cursor: r.cursor.String(), Reset: r.reset,
		WaitMax: int(maxFeedWait / time.Second),
	}
	for _, ev := range r.events {
		reply.Events = append(reply.Events, ev.wire())
	}
	// Suspensions this node decided but has not flushed yet: verify cannot
	// write them, so they travel in memory until then, out of the sequence
	// (seq 0). Dropping a cached key twice is harmless.
	for _, id := range b.anomalies.suspendedKeys() {
		reply.Events = append(reply.Events, wire.FeedEvent{KeyID: id, Kind: eventSuspended})
	}
	return &logical.Response{Data: reply.Data()}, nil
}

// waitForFeed waits for the feed's head to move (true: read again), or for
// a suspension to be decided, the deadline or the request's end (false:
// answer now). It wakes for nothing else: an idle held read costs no CPU.
func waitForFeed(ctx context.Context, changed, decided <-chan struct{}, deadline <-chan time.Time) bool {
	select {
	case <-changed:
		return true
	case <-decided:
		return false
	case <-deadline:
		return false
	case <-ctx.Done():
		return false
	}
}
