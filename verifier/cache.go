package verifier

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
	"golang.org/x/time/rate"
)

// entry is one cached positive verdict. Its verdict fields never change
// once cached; usage counters are atomics, the limiter has its own lock.
type entry struct {
	prefix, environment string
	// secretHash is SHA-256 of the key's secret part: the cache holds no
	// usable key, and the public parts are compared in clear.
	secretHash  [32]byte
	res         Result
	cidrs       []netip.Prefix
	expiresAt   time.Time
	cachedUntil time.Time
	limiter     *rate.Limiter
	// approved are the scopes the engine has said VALID to for this key.
	approved []string

	uses     atomic.Uint64
	lastUse  atomic.Int64 // unix nanoseconds
	lastIP   atomic.Pointer[string]
	reported atomic.Uint64 // uses already handed to a usage report
}

func secretHash(k keyformat.Key) [32]byte {
	s := k.SecretPart()
	// sha256 only reads its input: hash the string's bytes in place rather
	// than copying them to the heap on every request.
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(s), len(s))) // #nosec G103 -- read-only view of s; sha256 never writes or keeps its input
}

func (e *entry) matches(k keyformat.Key, h [32]byte) bool {
	return e.prefix == k.Prefix && e.environment == k.Environment &&
		subtle.ConstantTimeCompare(e.secretHash[:], h[:]) == 1
}

func (e *entry) result() Result {
	r := e.res
	r.Valid, r.Code, r.Message = true, "VALID", ""
	return r
}

func (e *entry) countUse(now time.Time, sourceIP string) {
	e.uses.Add(1)
	e.lastUse.Store(now.UnixNano())
	if sourceIP != "" {
		if p := e.lastIP.Load(); p == nil || *p != sourceIP {
			ip := sourceIP
			e.lastIP.Store(&ip)
		}
	}
}

// takeUsage returns uses not yet reported.
func (e *entry) takeUsage() (n uint64, last time.Time, ip string) {
	total := e.uses.Load()
	n = total - e.reported.Swap(total)
	if p := e.lastIP.Load(); p != nil {
		ip = *p
	}
	return n, time.Unix(0, e.lastUse.Load()), ip
}

// cache maps key_id to the verdict for that key.
type cache struct {
	mu   sync.RWMutex
	max  int
	byID map[string]*entry
	// evicted collects usage of entries dropped before it was reported.
	evicted func(keyID string, e *entry)
}

func newCache(max int) *cache {
	return &cache{max: max, byID: map[string]*entry{}}
}

func (c *cache) get(keyID string) *entry {
	c.mu.RLock()
	e := c.byID[keyID]
	c.mu.RUnlock()
	return e
}

// put caches e, keeping what an earlier entry for the same key learned
// (approved scopes, rate-limit state, unreported usage).
func (c *cache) put(keyID string, e *entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.byID[keyID]; old != nil && old.secretHash == e.secretHash {
		for _, s := range old.approved {
			if !slices.Contains(e.approved, s) {
				e.approved = append(e.approved, s)
			}
		}
		if old.limiter != nil && e.limiter != nil {
			e.limiter = old.limiter
		}
		c.retire(keyID, old)
	} else if old != nil {
		c.retire(keyID, old)
	} else if len(c.byID) >= c.max {
		for id, victim := range c.byID {
			delete(c.byID, id)
			c.retire(id, victim)
			break
		}
	}
	c.byID[keyID] = e
}

func (c *cache) retire(keyID string, e *entry) {
	if c.evicted != nil {
		c.evicted(keyID, e)
	}
}

func (c *cache) drop(keyID string) {
	c.mu.Lock()
	if e, ok := c.byID[keyID]; ok {
		delete(c.byID, keyID)
		c.retire(keyID, e)
	}
	c.mu.Unlock()
}

func (c *cache) clear() {
	c.mu.Lock()
	for id, e := range c.byID {
		c.retire(id, e)
	}
	c.byID = map[string]*entry{}
	c.mu.Unlock()
}

func (c *cache) each(f func(keyID string, e *entry)) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for id, e := range c.byID {
		f(id, e)
	}
}
