package vaultplugin

import (
	"context"
	"encoding/json"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"
)

const (
	// tidyPage is how many records tidy handles before letting other
	// requests at the locks; 100k records never hold the engine.
	tidyPage = 500
	// tidyInterval is how often periodic runs tidy on the active node.
	tidyInterval = time.Hour
	// minRetention is the least config retention accepted: a record
	// outlives its feed event (kept feedRetention) and a day of questions.
	minRetention = 24 * time.Hour
)

func pathTidy(b *backend) []*framework.Path {
	return []*framework.Path{{
		Pattern: "tidy",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: operationPrefix,
			OperationVerb:   "tidy",
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.UpdateOperation: &framework.PathOperation{
				Callback:  strict(b.pathTidy),
				Responses: okResponse("What tidy did.", tidyResponseFields),
				Summary:   "Drop records of keys revoked or expired longer than the retention ago.",
			},
		},
		HelpSynopsis: "Remove old key records.",
		HelpDescription: `Drops the records (and index entries) of keys whose latest possible end
(max_expires_at, or a later revocation or expiry) is longer than config
"retention" ago (default 30 days, at least 24h), and any in-memory state they
left, and revocations feed events older than the feed keeps (24h; the
newest event is always kept, so event numbers are never reused). Runs in
pages; also runs hourly on the active node. Replies with how many records
were scanned and removed.`,
	}}
}

func (b *backend) pathTidy(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	scanned, removed, err := b.tidy(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]any{"scanned": scanned, "removed": removed}}, nil
}

// tidyLastPath keeps when periodic last started a tidy, so a plugin that
// restarts (a reload, an upgrade, a crash loop) keeps the hourly pace
// instead of rescanning every record on its first run.
const tidyLastPath = "tidy/last"

type tidyLast struct {
	At time.Time `json:"at"`
}

func (b *backend) periodicTidy(ctx context.Context, s logical.Storage) error {
	due, err := b.tidyDue(ctx, s)
	if err != nil || !due {
		return err
	}
	_, _, err = b.tidy(ctx, s)
	return err
}

// tidyDue reports whether periodic should tidy now, and if so records that
// it does, in memory and in storage.
func (b *backend) tidyDue(ctx context.Context, s logical.Storage) (bool, error) {
	b.tidyMu.Lock()
	defer b.tidyMu.Unlock()
	now := b.now()
	if b.lastTidy.IsZero() {
		e, err := s.Get(ctx, tidyLastPath)
		if err != nil {
			return false, err
		}
		var last tidyLast
		if e != nil && json.Unmarshal(e.Value, &last) == nil {
			b.lastTidy = last.At
		}
	}
	// A time ahead of the clock by more than the interval (the clock was
	// stepped back, or another node's runs ahead) holds tidy off no longer.
	if since := now.Sub(b.lastTidy); since < tidyInterval && since > -tidyInterval {
		return false, nil
	}
	e, err := logical.StorageEntryJSON(tidyLastPath, tidyLast{At: now})
	if err != nil {
		return false, err
	}
	if err := s.Put(ctx, e); err != nil {
		return false, err
	}
	b.lastTidy = now
	return true, nil
}

// tidy removes records whose end (revocation or expiry) is older than the
// retention. It takes each key's lock only for that key, a page at a time.
func (b *backend) tidy(ctx context.Context, s logical.Storage) (scanned, removed int, err error) {
	cfg, err := b.getConfig(ctx, s)
	if err != nil {
		return 0, 0, err
	}
	ids, err := s.List(ctx, keyStoragePrefix)
	if err != nil {
		return 0, 0, err
	}
	// A retention stored by an earlier build may be below the minimum.
	cutoff := b.now().Add(-max(cfg.Retention, minRetention))
	for start := 0; start < len(ids); start += tidyPage {
		if err := ctx.Err(); err != nil {
			return scanned, removed, err
		}
		for _, id := range ids[start:min(start+tidyPage, len(ids))] {
			scanned++
			ok, err := b.tidyOne(ctx, s, id, cutoff)
			if err != nil {
				return scanned, removed, err
			}
			if ok {
				removed++
			}
		}
	}
	events, err := b.tidyEvents(ctx, s)
	if err != nil {
		return scanned, removed, err
	}
	if removed > 0 || events > 0 {
		b.Logger().Info("tidy removed old records", "keys", removed, "scanned", scanned, "feed_events", events)
	}
	return scanned, removed, nil
}

// keepUntil is the key's latest possible end, from which the retention
// counts: its end, or max_expires_at when that is later (a lease holding the
// api_key may run that long), so no record goes while a key it describes
// could still be presented.
func (r *keyRecord) keepUntil() time.Time {
	if r.MaxExpiresAt.After(r.end()) {
		return r.MaxExpiresAt
	}
	return r.end()
}

func (b *backend) tidyOne(ctx context.Context, s logical.Storage, id string, cutoff time.Time) (bool, error) {
	lock := locksutil.LockForKey(b.keyLocks, id)
	lock.Lock()
	defer lock.Unlock()
	rec, err := b.loadKey(ctx, s, id)
	if err != nil || rec == nil {
		return false, err
	}
	if rec.live(b.now()) || !rec.keepUntil().Before(cutoff) {
		return false, nil
	}
	// Indexes go after the record: a crash in between leaves only index
	// entries without a record, which every reader skips.
	if err := s.Delete(ctx, keyStoragePrefix+id); err != nil {
		return false, err
	}
	b.cache.drop(id)
	for _, k := range indexEntries(rec) {
		if err := s.Delete(ctx, k); err != nil {
			return true, err
		}
	}
	b.limiter.drop(id)
	b.anomalies.forget(id)
	return true, nil
}
