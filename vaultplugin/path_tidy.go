package vaultplugin

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
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
	// orphanGrace is how long a key index entry must have been seen without
	// its record before tidy deletes it. An issue writes its index entry
	// before its record, so an entry without one may be an issue in flight:
	// an hour is far longer than any issue's two writes (the role's lock,
	// which sweepIndex takes for the last look, covers a longer one).
	orphanGrace = time.Hour
	// maxSuspects bounds the index entries tidy remembers as suspects; more
	// orphans than that are taken up as the first ones go.
	maxSuspects = 100_000
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
newest event is always kept, so event numbers are never reused). A key index
entry without a record (left by an issue or a tidy that stopped half way)
is swept once two runs at least an hour apart have found it so, and an
anomaly index entry without its record at once. Runs in pages; also runs
hourly on the active node. Replies with how many records were scanned and
removed, and how many index entries were swept.`,
	}}
}

func (b *backend) pathTidy(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	n, err := b.tidy(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]any{
		"scanned": n.scanned, "removed": n.removed, "index_entries_removed": n.indexRemoved,
	}}, nil
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
	_, err = b.tidy(ctx, s)
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

// tidyCounts is what one tidy did.
type tidyCounts struct {
	scanned, removed int // key records looked at and dropped
	indexRemoved     int // orphaned index entries swept (key and anomaly)
}

// tidy removes records whose end (revocation or expiry) is older than the
// retention, then sweeps key index entries left without a record. It takes
// each key's lock only for that key, a page at a time.
func (b *backend) tidy(ctx context.Context, s logical.Storage) (n tidyCounts, err error) {
	cfg, err := b.getConfig(ctx, s)
	if err != nil {
		return n, err
	}
	ids, err := s.List(ctx, keyStoragePrefix)
	if err != nil {
		return n, err
	}
	// A retention stored by an earlier build may be below the minimum.
	cutoff := b.now().Add(-max(cfg.Retention, minRetention))
	for start := 0; start < len(ids); start += tidyPage {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		for _, id := range ids[start:min(start+tidyPage, len(ids))] {
			n.scanned++
			ok, err := b.tidyOne(ctx, s, id, cutoff)
			if err != nil {
				return n, err
			}
			if ok {
				n.removed++
			}
		}
	}
	// The record listing, sorted, for the sweeps' lookups (a backend's
	// List need not sort).
	records := slices.Sorted(slices.Values(ids))
	if n.indexRemoved, err = b.sweepIndex(ctx, s, records); err != nil {
		return n, err
	}
	anomalies, err := b.sweepAnomalyIndex(ctx, s, records)
	n.indexRemoved += anomalies
	if err != nil {
		return n, err
	}
	events, err := b.tidyEvents(ctx, s)
	if err != nil {
		return n, err
	}
	if n.removed > 0 || n.indexRemoved > 0 || events > 0 {
		b.Logger().Info("tidy removed old records", "keys", n.removed, "scanned", n.scanned,
			"index_entries", n.indexRemoved, "feed_events", events)
	}
	return n, nil
}

// sweepIndex deletes key index entries that have had no record for at
// least orphanGrace, and returns how many it deleted. records is the
// record listing tidy began with, sorted.
//
// An issue writes its index entry first, so an entry without a record may
// be an issue in flight; deleting it would let that key, once its record
// lands, escape bulk revocation and max_active_keys. So an entry found
// without a record is only a suspect: it is deleted by a later sweep, at
// least orphanGrace on, that still finds no record, looking under the
// role's lock, which every issue and rotation of the role holds from its
// index write to its record write. The suspects are kept in memory only: a
// restart, or a failover to another node, forgets them, which only delays
// the sweep by one grace.
func (b *backend) sweepIndex(ctx context.Context, s logical.Storage, records []string) (int, error) {
	b.sweepMu.Lock()
	defer b.sweepMu.Unlock()
	if b.suspects == nil {
		b.suspects = make(map[string]time.Time)
	}
	// A key in the listing had a record when tidy began: skipping it is
	// safe (only a delete could lose a key) and spares a read per key; one
	// orphaned since is found by the next tidy.
	now := b.now()
	removed := 0
	// seen are the suspects still orphaned; the others are forgotten.
	seen := make(map[string]bool, len(b.suspects))
	roles, err := s.List(ctx, keyIndexPrefix)
	if err != nil {
		return 0, err
	}
	for _, role := range roles { // List names folders with a slash: "r/"
		role = strings.TrimSuffix(role, "/")
		err := eachRoleIndexDir(ctx, s, role, func(dir string, ids []string) error {
			for _, id := range ids {
				if _, ok := slices.BinarySearch(records, id); ok {
					continue
				}
				entry := dir + id
				first, known := b.suspects[entry]
				if known && now.Sub(first) >= orphanGrace {
					gone, err := deleteOrphan(ctx, s, locksutil.LockForKey(b.roleLocks, role), entry, id)
					if err != nil {
						return err // still a suspect: retried next time
					}
					delete(b.suspects, entry)
					if gone {
						removed++
					}
					continue
				}
				// The listing is a snapshot: look at the record itself.
				e, err := s.Get(ctx, keyStoragePrefix+id)
				if err != nil {
					return err
				}
				switch {
				case e != nil:
				case known:
					seen[entry] = true
				case len(b.suspects) < maxSuspects:
					b.suspects[entry] = now
					seen[entry] = true
				}
			}
			return nil
		})
		if err != nil {
			return removed, err
		}
	}
	// Suspects whose record appeared or whose entry went are forgotten.
	for entry := range b.suspects {
		if !seen[entry] {
			delete(b.suspects, entry)
		}
	}
	return removed, nil
}

// sweepAnomalyIndex deletes monitor/anomalies' index entries whose key has
// no record (a tidy that stopped between a record and its entries), and
// returns how many it deleted. records is as for sweepIndex. It needs no
// grace: the usage flush writes an anomaly entry only under the key's lock
// and for a record it has just read, so an entry found without a record
// under that lock is an orphan.
func (b *backend) sweepAnomalyIndex(ctx context.Context, s logical.Storage, records []string) (int, error) {
	ids, err := s.List(ctx, anomalyIndexPrefix)
	if err != nil {
		return 0, err
	}
	removed := 0
	for _, id := range ids {
		if _, ok := slices.BinarySearch(records, id); ok {
			continue
		}
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		gone, err := deleteOrphan(ctx, s, locksutil.LockForKey(b.keyLocks, id), anomalyIndexPrefix+id, id)
		if err != nil {
			return removed, err
		}
		if gone {
			removed++
		}
	}
	return removed, nil
}

// deleteOrphan deletes an index entry if the record of key id is still
// missing, and reports whether it did. It looks and deletes holding lock,
// the one every writer of such an entry holds while it writes it: the
// role's for a key index entry (an issue or rotation holds it from the
// entry's write to its record's), the key's for an anomaly entry (the
// usage flush writes one beside a record it has just read).
func deleteOrphan(ctx context.Context, s logical.Storage, lock *locksutil.LockEntry, entry, id string) (bool, error) {
	lock.Lock()
	defer lock.Unlock()
	e, err := s.Get(ctx, keyStoragePrefix+id)
	if err != nil || e != nil {
		return false, err
	}
	if err := s.Delete(ctx, entry); err != nil {
		return false, fmt.Errorf("deleting orphaned index entry %s: %w", entry, err)
	}
	return true, nil
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
	// entries without a record, which every reader skips and a later tidy
	// sweeps once they have been orphaned for orphanGrace (sweepIndex).
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
