package vaultplugin

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"
)

// usageTracker counts verify successes in memory. Verify must not write
// storage (it runs on standbys and on every request), so counts become
// durable only when periodic (about once a minute) or clean flushes them.
type usageTracker struct {
	mu   sync.Mutex
	keys map[string]usage
	// max bounds the keys reports may leave pending (maxPendingUsage;
	// tests lower it).
	max int
}

type usage struct {
	count    uint64
	last     time.Time
	sourceIP string
	ips      []string // distinct source addresses, at most maxSourceIPs
	// since is when the oldest use not yet in storage was counted: the
	// flush writes the keys that have waited longest first.
	since time.Time
}

// usageFlushBatch bounds how many key records one periodic run rewrites
// for usage alone. Each is a read and a write through Vault's storage, so a
// mount whose keys are used by many distinct clients every minute would
// otherwise spend much of Vault's write capacity on bookkeeping: make
// bench's 100,000-key phase uses some 40,000 distinct keys a minute, and
// the bench machine's Vault writes about 1,700 KV entries a second. Keys
// wait oldest first, so a key's usage reaches storage within (distinct keys
// used / usageFlushBatch) runs, and reads on this node include what is
// still pending. Anomaly findings (suspensions among them) are never held
// back.
const usageFlushBatch = 2000

func newUsageTracker() *usageTracker {
	return &usageTracker{keys: make(map[string]usage), max: maxPendingUsage}
}

func (t *usageTracker) record(keyID string, now time.Time, sourceIP string) {
	t.mu.Lock()
	u := t.keys[keyID]
	if u.count == 0 {
		u.since = now
	}
	u.count++
	u.last = now
	if sourceIP != "" {
		u.sourceIP = sourceIP
		if len(u.ips) < maxSourceIPs && !slices.Contains(u.ips, sourceIP) {
			u.ips = append(u.ips, sourceIP)
		}
	}
	t.keys[keyID] = u
	t.mu.Unlock()
}

// maxPendingUsage bounds how many keys reports may leave waiting for a
// flush (verify's own counting is bounded by the keys that verify). It is
// the size of the record cache: a mount with more keys in use than that
// has its reports for the rest refused until a flush makes room.
const maxPendingUsage = defaultCacheSize

// add merges a batch counted elsewhere (a local verifier's report). Its
// place in the flush order comes from the engine's clock (now), never the
// reporter's last_used_at. It reports false, adding nothing, when keyID
// is not pending and t.max keys are.
func (t *usageTracker) add(keyID string, n uint64, last time.Time, sourceIP string, now time.Time) bool {
	var ips []string
	if sourceIP != "" {
		ips = []string{sourceIP}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.keys[keyID]; !ok && len(t.keys) >= t.max {
		return false
	}
	t.mergeLocked(keyID, usage{count: n, last: last, sourceIP: sourceIP, ips: ips, since: now})
	return true
}

func (t *usageTracker) pending(keyID string) usage {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.keys[keyID]
}

// take removes and returns everything counted so far.
func (t *usageTracker) take() map[string]usage {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := t.keys
	t.keys = make(map[string]usage, len(out))
	return out
}

// putBack returns counts that could not be flushed, so a storage error
// delays them instead of losing them.
func (t *usageTracker) putBack(keyID string, u usage) {
	t.mu.Lock()
	t.mergeLocked(keyID, u)
	t.mu.Unlock()
}

func (t *usageTracker) mergeLocked(keyID string, u usage) {
	cur := t.keys[keyID]
	cur.count += u.count
	cur.ips = appendSourceIPs(cur.ips, u.ips...)
	if u.last.After(cur.last) {
		cur.last, cur.sourceIP = u.last, u.sourceIP
	}
	if cur.since.IsZero() || (!u.since.IsZero() && u.since.Before(cur.since)) {
		cur.since = u.since
	}
	t.keys[keyID] = cur
}

// flushUsage makes usage counts and anomaly findings durable, one storage
// write per key. Every key with anomaly findings is written; of the keys
// with usage alone, at most limit (0: all), those waiting longest first.
// What is not written, or cannot be, is queued again.
func (b *backend) flushUsage(ctx context.Context, s logical.Storage, limit int) error {
	used := b.usage.take()
	found := b.anomalies.take()
	ids := make([]string, 0, len(used)+len(found))
	for id := range found {
		ids = append(ids, id)
	}
	usageOnly := make([]string, 0, len(used))
	for id := range used {
		if found[id] == nil {
			usageOnly = append(usageOnly, id)
		}
	}
	// Oldest first also when a shutdown's flush runs out of time.
	slices.SortFunc(usageOnly, func(a, b string) int {
		if c := used[a].since.Compare(used[b].since); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	if limit > 0 && len(usageOnly) > limit {
		for _, id := range usageOnly[limit:] {
			b.usage.putBack(id, used[id])
		}
		usageOnly = usageOnly[:limit]
	}
	ids = append(ids, usageOnly...)
	var firstErr error
	for _, id := range ids {
		u, hasU := used[id]
		pa := found[id]
		if written, err := b.flushOne(ctx, s, id, u, pa); err != nil {
			switch {
			case written:
				// The record has the counts and findings; only the
				// suspension's feed event is missing. Queue the
				// suspension alone, so its event is written next time
				// and the counts are not added twice.
				b.anomalies.putBack(id, &pendingAnomalies{found: map[string]*anomaly{}, suspendedAt: pa.suspendedAt, resumes: pa.resumes})
			default:
				if hasU {
					b.usage.putBack(id, u)
				}
				if pa != nil {
					b.anomalies.putBack(id, pa)
				}
			}
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if pa != nil && !pa.suspendedAt.IsZero() {
			b.anomalies.settled(id, pa.suspendedAt)
		}
	}
	return firstErr
}

// flushOne writes one key's usage and findings. written reports that the
// record was written (an error then is the suspension's feed event's).
func (b *backend) flushOne(ctx context.Context, s logical.Storage, id string, u usage, pa *pendingAnomalies) (written bool, err error) {
	lock := locksutil.LockForKey(b.keyLocks, id)
	lock.Lock()
	defer lock.Unlock()
	rec, err := b.loadKey(ctx, s, id)
	if err != nil || rec == nil {
		return false, err // a key tidied away has no usage to keep
	}
	rec.UseCount += u.count
	if u.last.After(rec.LastUsedAt) {
		rec.LastUsedAt = u.last
		if u.sourceIP != "" {
			rec.LastSourceIP = u.sourceIP
		}
	}
	rec.SourceIPs = appendSourceIPs(rec.SourceIPs, u.ips...)
	suspend := false
	if pa != nil {
		rec.SourceIPs = appendSourceIPs(rec.SourceIPs, pa.newIPs...)
		if len(pa.found) > 0 {
			rec.Anomalies = mergeAnomalies(rec.Anomalies, pa.found)
			if err := s.Put(ctx, &logical.StorageEntry{Key: anomalyIndexPrefix + id, Value: []byte{}}); err != nil {
				return false, err
			}
		}
		// A suspension already in the record with this very time is one
		// whose event failed after the record write: write the event again.
		// One decided before the record's last resume was lifted by it (the
		// resume landed between this flush's take and this write): it is
		// not written back.
		if !pa.suspendedAt.IsZero() && !pa.liftedBy(rec) && (rec.SuspendedAt.IsZero() || rec.SuspendedAt.Equal(pa.suspendedAt)) {
			rec.SuspendedAt = pa.suspendedAt
			rec.editNotes(func(n *KeyNotes) { n.SuspendReason = "anomalous use" })
			suspend = true
		}
	}
	if err := b.putKey(ctx, s, rec); err != nil {
		return false, err
	}
	// The event goes after the record it describes, numbered by when it is
	// written (not by when the suspension happened, which may be well
	// before cursors already handed out). Until it is written the
	// suspension travels with every feed read from memory.
	if suspend {
		return true, b.recordEvent(ctx, s, revocationEvent{KeyID: id, Kind: eventSuspended})
	}
	return true, nil
}
