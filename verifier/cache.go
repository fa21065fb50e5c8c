package verifier

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unique"
	"unsafe"

	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
	"golang.org/x/time/rate"
)

// entry is one cached positive verdict. Its verdict fields never change
// once cached; usage counters are atomics, the limiter has its own lock.
//
// A gateway holds 100,000 of these (make bench), so an entry keeps only
// what a hit needs (TestCache_bytesPerEntry): the verdict's fields rather
// than a whole Result (whose code and message a hit sets anyway), strings
// that repeat across keys (prefix, environment, role, scope names) interned,
// and nothing that points into the request that filled it (its key_id and
// prefix were substrings of the presented key, which kept each key's whole
// header value alive in the cache).
type entry struct {
	// keyID is the engine's key_id (its own allocation, also the cache's
	// map key); prefix and environment are the presented key's.
	keyID, prefix, environment string
	// secretHash is SHA-256 of the key's secret part: the cache holds no
	// usable key, and the public parts are compared in clear.
	secretHash [32]byte
	// The verdict, as result returns it. scopes has a backing array of its
	// own per entry (only the strings are shared), so a caller that writes
	// into a Result's Scopes changes no other key's answer.
	role, keyEnv string
	scopes       []string
	labels       map[string]string
	expiresAt    time.Time
	cachedUntil  time.Time
	cidrs        []netip.Prefix
	limiter      *rate.Limiter
	// approved are the scopes the engine has said VALID to for this key,
	// each within CacheTTL of now (see cache.put).
	approved []string
	// ticket is the usage_ticket of the engine answer this entry holds:
	// the proof, sent with usage reports, that this verifier verified the
	// key through the engine.
	ticket string
	// ticketAt orders tickets (monotonic nanoseconds): the newest is kept.
	ticketAt int64

	uses     atomic.Uint64
	lastUse  atomic.Int64 // unix nanoseconds
	lastIP   atomic.Pointer[string]
	reported atomic.Uint64 // uses already handed to a usage report

	// others are the source addresses other than lastIP used since the
	// last report, each with when it was last seen (unix nanoseconds), at
	// most maxReportSources: touched only when the source changes, so a key used
	// from one address pays one atomic load per use for it.
	othersMu sync.Mutex
	others   map[string]int64
}

// intern is the one shared copy of s: values that repeat across cached
// keys (prefix, environment, role, scope names, source addresses) are held
// once, and a copy never points into the buffer of the request it came
// from. unique's table drops a value no entry uses any more.
func intern(s string) string {
	return unique.Make(s).Value()
}

// maxReportSources bounds the distinct source addresses reported per key and
// report (the engine keeps 16 per key).
const maxReportSources = 16

func secretHash(k keyformat.Key) [32]byte {
	s := k.SecretPart()
	// sha256 only reads its input: hash the string's bytes in place rather
	// than copying them to the heap on every request.
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(s), len(s))) // #nosec G103 -- read-only view of s; sha256 never writes or keeps its input
}

func (e *entry) matches(k keyformat.Key, h [32]byte) bool {
	return e.prefix == k.Prefix && e.environment == k.Environment && equalHash(&e.secretHash, &h)
}

// equalHash compares two hashes in constant time, a word at a time (what
// subtle.ConstantTimeCompare does a byte at a time, with no branch on the
// data either).
func equalHash(a, b *[32]byte) bool {
	var x uint64
	for i := 0; i < 32; i += 8 {
		x |= binary.LittleEndian.Uint64(a[i:i+8]) ^ binary.LittleEndian.Uint64(b[i:i+8])
	}
	return subtle.ConstantTimeEq(int32(x>>32)|int32(x), 0) == 1 // #nosec G115 -- folding the difference's halves; only zero matters
}

func (e *entry) result() Result {
	return Result{
		Valid: true, Code: wire.CodeValid, KeyID: e.keyID, Role: e.role, Environment: e.keyEnv,
		Scopes: e.scopes, ExpiresAt: e.expiresAt, Labels: e.labels,
	}
}

func (e *entry) countUse(now time.Time, sourceIP string) {
	e.uses.Add(1)
	e.lastUse.Store(now.UnixNano())
	if sourceIP != "" {
		if p := e.lastIP.Load(); p == nil || *p != sourceIP {
			e.othersMu.Lock()
			if p != nil {
				if e.others == nil {
					e.others = map[string]int64{}
				}
				if _, ok := e.others[*p]; ok || len(e.others) < maxReportSources {
					e.others[*p] = now.UnixNano()
				}
			}
			delete(e.others, sourceIP)
			ip := intern(sourceIP)
			e.lastIP.Store(&ip)
			e.othersMu.Unlock()
		}
	}
}

// takeUsage returns uses not yet reported: how many, the last use and its
// source, and the other sources used since the last report (with when each
// was last seen).
func (e *entry) takeUsage() (n uint64, last time.Time, ip string, others map[string]int64) {
	total := e.uses.Load()
	n = total - e.reported.Swap(total)
	e.othersMu.Lock()
	others, e.others = e.others, nil
	e.othersMu.Unlock()
	if p := e.lastIP.Load(); p != nil {
		ip = *p
		delete(others, ip)
	}
	return n, time.Unix(0, e.lastUse.Load()), ip, others
}

// cache maps key_id to the verdict for that key.
//
// Reads take no lock: the map is a sync.Map (a concurrent hash trie whose
// loads are atomic pointer reads), so verifies on every core look keys up
// without sharing a lock word. Writers (fills, the feed's drops, eviction)
// take mu, which also keeps n (the number of entries) and the generation
// rule exact.
//
// A reply the engine gave may be cached only if the feed has not dropped
// anything since the request was sent: the reply may predate the revocation
// the drop applied. A caller takes generation() before asking the engine
// and passes it to put, which refuses to fill if any drop or clear happened
// since (drops counts them), as the engine's storeCache does.
type cache struct {
	byID sync.Map // key_id -> *entry

	mu    sync.Mutex // serialises writers
	max   int
	n     int // entries in byID; mu held
	drops atomic.Uint64
	// evicted collects usage of entries dropped before it was reported.
	evicted func(keyID string, e *entry)
	// retiredUses adds up the uses of entries no longer cached (Status's
	// cache hits).
	retiredUses atomic.Uint64
}

func newCache(max int) *cache {
	return &cache{max: max}
}

func (c *cache) get(keyID string) *entry {
	if e, ok := c.byID.Load(keyID); ok {
		return e.(*entry)
	}
	return nil
}

// generation is taken before asking the engine for an answer that put may
// cache.
func (c *cache) generation() uint64 {
	return c.drops.Load()
}

// put caches e unless the feed dropped anything since generation gen was
// taken; it reports whether it did.
//
// Approved scopes are never carried across a refresh: an earlier entry's
// approvals are kept only while that entry is still fresh (now is before its
// cachedUntil), only for scopes the new answer still lists, and the new
// entry then ends when the earlier one would have. So no approval is used
// longer than CacheTTL after the engine answer that gave it, and a refresh
// after the TTL starts from the new answer alone (after a change of
// signed_scopes, the engine's next answer decides). Rate-limit state and
// unreported usage are kept.
func (c *cache) put(keyID string, e *entry, gen uint64, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.drops.Load() != gen {
		return false
	}
	if old := c.get(keyID); old != nil && old.secretHash == e.secretHash {
		if now.Before(old.cachedUntil) {
			for _, s := range old.approved {
				if !slices.Contains(e.approved, s) && slices.Contains(e.scopes, s) {
					e.approved = append(e.approved, s)
				}
			}
			if old.cachedUntil.Before(e.cachedUntil) {
				e.cachedUntil = old.cachedUntil
			}
		}
		if old.limiter != nil && e.limiter != nil {
			e.limiter = old.limiter
		}
		c.retire(keyID, old)
	} else if old != nil {
		c.retire(keyID, old)
	} else {
		if c.n >= c.max {
			c.byID.Range(func(id, victim any) bool {
				c.byID.Delete(id)
				c.n--
				c.retire(id.(string), victim.(*entry))
				return false
			})
		}
		c.n++
	}
	c.byID.Store(keyID, e)
	return true
}

func (c *cache) retire(keyID string, e *entry) {
	c.retiredUses.Add(e.uses.Load())
	if c.evicted != nil {
		c.evicted(keyID, e)
	}
}

// removeLocked deletes keyID's entry; mu held.
func (c *cache) removeLocked(keyID string, e *entry) {
	c.byID.Delete(keyID)
	c.n--
	c.retire(keyID, e)
}

// drop forgets keyID; it counts as a drop whether or not keyID was cached
// (a reply in flight for it must not be cached).
func (c *cache) drop(keyID string) {
	c.mu.Lock()
	c.drops.Add(1)
	if e := c.get(keyID); e != nil {
		c.removeLocked(keyID, e)
	}
	c.mu.Unlock()
}

// dropIf forgets keyID if its entry is for the same key (same secret): an
// engine answer refusing one key must not evict another's entry.
func (c *cache) dropIf(keyID string, h [32]byte) {
	c.mu.Lock()
	if e := c.get(keyID); e != nil && e.secretHash == h {
		c.drops.Add(1)
		c.removeLocked(keyID, e)
	}
	c.mu.Unlock()
}

// dropWhere forgets every entry f selects; it counts as a drop (a reply in
// flight for such a key must not be cached).
func (c *cache) dropWhere(f func(e *entry) bool) {
	c.mu.Lock()
	c.drops.Add(1)
	c.byID.Range(func(id, e any) bool {
		if f(e.(*entry)) {
			c.removeLocked(id.(string), e.(*entry))
		}
		return true
	})
	c.mu.Unlock()
}

func (c *cache) clear() {
	c.mu.Lock()
	c.drops.Add(1)
	c.byID.Range(func(id, e any) bool {
		c.removeLocked(id.(string), e.(*entry))
		return true
	})
	c.mu.Unlock()
}

func (c *cache) each(f func(keyID string, e *entry)) {
	c.byID.Range(func(id, e any) bool {
		f(id.(string), e.(*entry))
		return true
	})
}
