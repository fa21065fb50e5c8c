package vaultplugin

import "sync"

// storeCache is a bounded map of storage entries the engine reads on every
// request (key records for verify, roles for creds): for an external
// plugin each storage read is a gRPC round trip to Vault. When full it
// evicts an arbitrary entry: traffic concentrates on live keys and roles,
// so a miss only costs one storage read.
//
// Writers (putKey, tidy, role writes, invalidate) change storage first and
// the cache after; readers that missed read storage and then fill. A fill
// must never replace what a writer cached or bring back what a writer
// dropped, or a revoked key would verify VALID from a stale copy until
// evicted. So fill only adds a missing entry, and only if no entry was
// dropped since the reader's storage read began (drops counts them).
//
// Evictions are not drops: when the cache is full every fill evicts, and if
// an eviction blocked every fill in flight a full cache would stop filling
// under load. But an evicted entry may be a writer's newer copy, so a fill
// of the evicted key itself must still be refused: the last evictRing
// evicted keys are remembered with their eviction number, and a fill is
// refused if its key was evicted since its generation (or if more
// evictions happened than the ring remembers).
type storeCache[V any] struct {
	mu        sync.RWMutex
	max       int
	recs      map[string]V
	drops     uint64
	evictions uint64
	evicted   [evictRing]string
}

const evictRing = 1024

// cacheGen is what a reader takes before its storage read.
type cacheGen struct{ drops, evictions uint64 }

func newStoreCache[V any](max int) *storeCache[V] {
	return &storeCache[V]{max: max, recs: make(map[string]V)}
}

func (c *storeCache[V]) get(id string) (V, bool) {
	c.mu.RLock()
	r, ok := c.recs[id]
	c.mu.RUnlock()
	return r, ok
}

// put caches an entry just written to storage, replacing any cached copy.
func (c *storeCache[V]) put(id string, r V) {
	c.mu.Lock()
	c.insert(id, r)
	c.mu.Unlock()
}

// through returns id's entry from the cache or, on a miss, from read,
// and caches what read found. found is false when storage holds no entry
// (nothing is cached then). This is the only way readers fill the cache,
// so every miss follows the generation protocol above.
func (c *storeCache[V]) through(id string, read func() (v V, found bool, err error)) (V, bool, error) {
	if v, ok := c.get(id); ok {
		return v, true, nil
	}
	gen := c.generation()
	v, found, err := read()
	if err != nil || !found {
		return v, false, err
	}
	c.fill(id, v, gen)
	return v, true, nil
}

// generation is taken before a storage read whose result may be cached
// with fill.
func (c *storeCache[V]) generation() cacheGen {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return cacheGen{c.drops, c.evictions}
}

// fill caches an entry read from storage, unless a writer cached a newer
// copy or dropped one since generation gen was taken.
func (c *storeCache[V]) fill(id string, r V, gen cacheGen) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.recs[id]; ok || c.drops != gen.drops || c.evictedSince(id, gen.evictions) {
		return
	}
	c.insert(id, r)
}

// evictedSince reports whether id may have been evicted after eviction
// number since. c.mu must be held.
func (c *storeCache[V]) evictedSince(id string, since uint64) bool {
	n := c.evictions - since
	if n == 0 {
		return false
	}
	if n > evictRing {
		return true
	}
	for e := since + 1; e <= c.evictions; e++ {
		if c.evicted[e%evictRing] == id {
			return true
		}
	}
	return false
}

// insert adds or replaces an entry, evicting an arbitrary other one when
// full (remembered in the eviction ring: the evicted entry may be a
// writer's newer copy). c.mu must be held for writing.
func (c *storeCache[V]) insert(id string, r V) {
	if _, ok := c.recs[id]; !ok && len(c.recs) >= c.max {
		for k := range c.recs {
			delete(c.recs, k)
			c.evictions++
			c.evicted[c.evictions%evictRing] = k
			break
		}
	}
	c.recs[id] = r
}

func (c *storeCache[V]) drop(id string) {
	c.mu.Lock()
	delete(c.recs, id)
	c.drops++
	c.mu.Unlock()
}
