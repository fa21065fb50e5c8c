package vaultplugin

import (
	"sync"
	"time"
)

// Forged keys are cheap: CRC32 is public, so anyone can mint well-formed
// keys with random key_ids that pass the offline check. Each would cost
// verify a storage read (a gRPC round trip to Vault and a read of its
// backend). notFoundCache remembers, briefly, the key_ids that had no
// record, so a repeat costs a map lookup.
const (
	notFoundTTL  = 5 * time.Second
	notFoundSize = 10_000
)

// notFoundCache is a bounded, short-lived set of key_ids that verify found
// no record for. An issued key_id is never shadowed by it: issue and
// Invalidate of keys/<id> drop the id, and an add whose storage read began
// before any drop is discarded (the same generation rule as storeCache),
// so a verify that read storage just before the record landed cannot
// re-add the id afterwards.
type notFoundCache struct {
	mu        sync.RWMutex
	ids       map[string]time.Time // key_id -> remembered until
	max       int
	ttl       time.Duration
	drops     uint64
	lastSweep time.Time
}

func newNotFoundCache(max int, ttl time.Duration) *notFoundCache {
	return &notFoundCache{ids: make(map[string]time.Time), max: max, ttl: ttl}
}

// has reports whether id answered NOT_FOUND less than ttl ago.
func (c *notFoundCache) has(id string, now time.Time) bool {
	c.mu.RLock()
	until, ok := c.ids[id]
	c.mu.RUnlock()
	return ok && now.Before(until)
}

// generation is taken before the storage read whose miss may be added.
func (c *notFoundCache) generation() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.drops
}

// add remembers id unless some id was dropped since gen was taken. When
// full it first forgets what has expired (at most twice per ttl, so a
// flood of forgeries does not scan the set on every request), then an
// arbitrary entry.
func (c *notFoundCache) add(id string, now time.Time, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.drops != gen {
		return
	}
	if _, ok := c.ids[id]; !ok && len(c.ids) >= c.max {
		if now.Sub(c.lastSweep) >= c.ttl/2 || now.Before(c.lastSweep) {
			c.lastSweep = now
			for k, until := range c.ids {
				if !now.Before(until) {
					delete(c.ids, k)
				}
			}
		}
		for k := range c.ids {
			if len(c.ids) < c.max {
				break
			}
			delete(c.ids, k)
		}
	}
	c.ids[id] = now.Add(c.ttl)
}

// drop forgets id (it has a record now, or may have).
func (c *notFoundCache) drop(id string) {
	c.mu.Lock()
	delete(c.ids, id)
	c.drops++
	c.mu.Unlock()
}

func (c *notFoundCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.ids)
}
