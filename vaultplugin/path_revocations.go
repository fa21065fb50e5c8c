package vaultplugin

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

const (
	revocationPrefix = "revocations/"
	// feedRetention is how long revocation events are kept for local
	// verifiers. A verifier whose cursor is older must drop its cache.
	feedRetention = 24 * time.Hour
	// feedSettle holds the cursor back a little: an event stamped just
	// before a concurrent read may land after it. Events inside the window
	// are sent again; dropping a key from a cache twice is harmless.
	feedSettle = 2 * time.Second
	// maxFeedEvents bounds one reply; the verifier asks again from the cursor.
	maxFeedEvents = 1000

	eventRevoked   = "revoked"
	eventRotated   = "rotated"
	eventSuspended = "suspended"
)

// revocationEvent tells local verifiers to stop trusting a cached key.
type revocationEvent struct {
	KeyID     string    `json:"key_id"`
	Kind      string    `json:"kind"`
	At        time.Time `json:"at"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// eventID orders events by time; the key_id suffix keeps ids unique.
func eventID(at time.Time, keyID string) string {
	return fmt.Sprintf("%020d-%s", at.UnixNano(), keyID)
}

func (b *backend) recordEvent(ctx context.Context, s logical.Storage, ev revocationEvent) error {
	e, err := logical.StorageEntryJSON(revocationPrefix+eventID(ev.At, ev.KeyID), ev)
	if err != nil {
		return err
	}
	return s.Put(ctx, e)
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
		HelpDescription: `Returns the key_ids revoked, rotated out (with their new expires_at) or
suspended since "since", and a cursor to pass next time. With no "since" it
returns no events and the current cursor. "reset" is true when the cursor is
older than the feed keeps (24h): the caller must drop everything it cached.`,
	}}
}

func (b *backend) pathRevocationsRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	since := d.Get("since").(string)
	now := b.now()
	settled := eventID(now.Add(-feedSettle), "")
	if since == "" {
		return &logical.Response{Data: map[string]any{"events": []map[string]any{}, "cursor": settled, "reset": false}}, nil
	}
	if !validCursor(since) {
		return respond(badField("since", "must be a cursor returned by this path"))
	}
	ids, err := req.Storage.List(ctx, revocationPrefix)
	if err != nil {
		return nil, err
	}
	sort.Strings(ids)
	reset := since < eventID(now.Add(-feedRetention), "")
	events := make([]map[string]any, 0)
	cursor := since
	for _, id := range ids {
		if id <= since {
			continue
		}
		if len(events) == maxFeedEvents {
			break
		}
		e, err := req.Storage.Get(ctx, revocationPrefix+id)
		if err != nil {
			return nil, err
		}
		if e == nil {
			continue
		}
		var ev revocationEvent
		if err := e.DecodeJSON(&ev); err != nil {
			return nil, err
		}
		events = append(events, map[string]any{
			"key_id": ev.KeyID, "kind": ev.Kind, "at": ev.At.UTC().Format(time.RFC3339Nano), "expires_at": formatTime(ev.ExpiresAt),
		})
		if id <= settled {
			cursor = id
		}
	}
	if len(events) < maxFeedEvents && settled > cursor {
		cursor = settled
	}
	// Suspensions this node decided but has not flushed yet: verify cannot
	// write them, so they travel in memory until then. Sent on every read
	// until flushed; dropping a cached key twice is harmless.
	for _, id := range b.anomalies.suspendedKeys() {
		events = append(events, map[string]any{"key_id": id, "kind": eventSuspended, "at": "", "expires_at": ""})
	}
	return &logical.Response{Data: map[string]any{"events": events, "cursor": cursor, "reset": reset}}, nil
}

func validCursor(c string) bool {
	ts, keyID, ok := strings.Cut(c, "-")
	if !ok || len(ts) != 20 || strings.Trim(ts, "0123456789") != "" {
		return false
	}
	return keyID == "" || keyformat.ValidKeyID(keyID)
}

// tidyEvents drops feed events older than the feed keeps.
func (b *backend) tidyEvents(ctx context.Context, s logical.Storage) (int, error) {
	ids, err := s.List(ctx, revocationPrefix)
	if err != nil {
		return 0, err
	}
	horizon := eventID(b.now().Add(-feedRetention), "")
	n := 0
	for _, id := range ids {
		if id < horizon {
			if err := s.Delete(ctx, revocationPrefix+id); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}
