package vaultplugin

import (
	"context"
	"slices"
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
}

type usage struct {
	count    uint64
	last     time.Time
	sourceIP string
	ips      []string // distinct source addresses, at most maxSourceIPs
}

func newUsageTracker() *usageTracker {
	return &usageTracker{keys: make(map[string]usage)}
}

func (t *usageTracker) record(keyID string, now time.Time, sourceIP string) {
	t.mu.Lock()
	u := t.keys[keyID]
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

// add merges a batch counted elsewhere (a local verifier's report).
func (t *usageTracker) add(keyID string, n uint64, last time.Time, sourceIP string) {
	var ips []string
	if sourceIP != "" {
		ips = []string{sourceIP}
	}
	t.putBack(keyID, usage{count: n, last: last, sourceIP: sourceIP, ips: ips})
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
	cur := t.keys[keyID]
	cur.count += u.count
	cur.ips = appendSourceIPs(cur.ips, u.ips...)
	if u.last.After(cur.last) {
		cur.last, cur.sourceIP = u.last, u.sourceIP
	}
	t.keys[keyID] = cur
	t.mu.Unlock()
}

// flushUsage makes usage counts and anomaly findings durable, one storage
// write per key that saw traffic. What cannot be written is queued again.
func (b *backend) flushUsage(ctx context.Context, s logical.Storage) error {
	used := b.usage.take()
	found := b.anomalies.take()
	ids := make(map[string]struct{}, len(used)+len(found))
	for id := range used {
		ids[id] = struct{}{}
	}
	for id := range found {
		ids[id] = struct{}{}
	}
	var firstErr error
	for id := range ids {
		u, hasU := used[id]
		pa := found[id]
		if err := b.flushOne(ctx, s, id, u, pa); err != nil {
			if hasU {
				b.usage.putBack(id, u)
			}
			if pa != nil {
				b.anomalies.putBack(id, pa)
			}
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	return firstErr
}

func (b *backend) flushOne(ctx context.Context, s logical.Storage, id string, u usage, pa *pendingAnomalies) error {
	lock := locksutil.LockForKey(b.keyLocks, id)
	lock.Lock()
	defer lock.Unlock()
	rec, err := b.loadKey(ctx, s, id)
	if err != nil || rec == nil {
		return err // a key tidied away has no usage to keep
	}
	rec.UseCount += u.count
	if u.last.After(rec.LastUsedAt) {
		rec.LastUsedAt = u.last
		if u.sourceIP != "" {
			rec.LastSourceIP = u.sourceIP
		}
	}
	rec.SourceIPs = appendSourceIPs(rec.SourceIPs, u.ips...)
	if pa != nil {
		rec.SourceIPs = appendSourceIPs(rec.SourceIPs, pa.newIPs...)
		if len(pa.found) > 0 {
			rec.Anomalies = mergeAnomalies(rec.Anomalies, pa.found)
			if err := s.Put(ctx, &logical.StorageEntry{Key: anomalyIndexPrefix + id, Value: []byte{}}); err != nil {
				return err
			}
		}
		if !pa.suspendedAt.IsZero() && rec.SuspendedAt.IsZero() {
			rec.SuspendedAt = pa.suspendedAt
			rec.SuspendReason = "anomalous use"
			if err := b.recordEvent(ctx, s, revocationEvent{KeyID: id, Kind: eventSuspended, At: pa.suspendedAt}); err != nil {
				return err
			}
		}
	}
	return b.putKey(ctx, s, rec)
}
