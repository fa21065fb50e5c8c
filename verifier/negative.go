package verifier

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Forged keys: CRC32 is public, so anyone can mint well-formed keys with
// random key_ids, and each would cost a round trip to Vault and a storage
// read. Two defences sit in front of the engine on a cache miss:
//
//   - notFoundCache remembers, for a short while, keys the engine answered
//     NOT_FOUND for. An entry is the whole key (key_id and a hash of the
//     secret): the engine also answers NOT_FOUND for a real key_id with a
//     wrong secret, and key_ids are public, so an entry by key_id alone
//     would let anyone shadow another's key.
//   - sourceLimits gives each source address a token bucket of NOT_FOUND
//     answers; once a source has spent it, its cache misses are answered
//     NOT_FOUND without asking the engine until the bucket refills.
const (
	notFoundCacheSize = 10_000
	notFoundCacheTTL  = 2 * time.Second
	maxSources        = 10_000
	// sourceSweepEvery bounds how often a full source map is swept of idle
	// buckets.
	sourceSweepEvery = time.Second
)

type notFoundEntry struct {
	prefix, environment string
	secretHash          [32]byte
	until               time.Duration // monotonic
}

type notFoundCache struct {
	mu   sync.Mutex
	byID map[string]notFoundEntry
}

func newNotFoundCache() *notFoundCache {
	return &notFoundCache{byID: map[string]notFoundEntry{}}
}

// has reports whether the engine answered NOT_FOUND for this very key less
// than notFoundCacheTTL ago.
func (c *notFoundCache) has(keyID, prefix, environment string, h [32]byte, now time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byID[keyID]
	if !ok {
		return false
	}
	if now >= e.until {
		delete(c.byID, keyID)
		return false
	}
	return e.secretHash == h && e.prefix == prefix && e.environment == environment
}

func (c *notFoundCache) put(keyID, prefix, environment string, h [32]byte, now time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.byID[keyID]; !ok && len(c.byID) >= notFoundCacheSize {
		for id, e := range c.byID {
			if now >= e.until {
				delete(c.byID, id)
			}
		}
		for id := range c.byID {
			if len(c.byID) < notFoundCacheSize {
				break
			}
			delete(c.byID, id)
		}
	}
	c.byID[keyID] = notFoundEntry{prefix: prefix, environment: environment, secretHash: h, until: now + notFoundCacheTTL}
}

// forget drops keyID: the engine answered something other than NOT_FOUND
// for a key with this key_id.
func (c *notFoundCache) forget(keyID string) {
	c.mu.Lock()
	delete(c.byID, keyID)
	c.mu.Unlock()
}

func (c *notFoundCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.byID)
}

// sourceLimits is a bounded map of NOT_FOUND token buckets by source. When
// it is full of buckets still in use, new sources share one overflow
// bucket: an attacker with many addresses cannot push the others out, nor
// get unlimited answers.
type sourceLimits struct {
	limit     rate.Limit
	burst     int
	mu        sync.Mutex
	bySource  map[string]*rate.Limiter
	overflow  *rate.Limiter
	lastSweep time.Time
}

func newSourceLimits(perSecond float64, burst int) *sourceLimits {
	return &sourceLimits{
		limit: rate.Limit(perSecond), burst: burst,
		bySource: map[string]*rate.Limiter{},
		overflow: rate.NewLimiter(rate.Limit(perSecond), burst),
	}
}

// sourceKey is the bucket a source address spends from: an IPv4 address,
// an IPv6 /64 (one host usually holds a whole /64), or "" for a request
// without a source address (not limited: the caller did not say who sent
// it). Anything else that is not an address shares one bucket.
func sourceKey(sourceIP string) string {
	if sourceIP == "" {
		return ""
	}
	a, err := netip.ParseAddr(sourceIP)
	if err != nil {
		return "?"
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// bucket returns src's bucket; with create false it returns nil for a
// source that has none (its bucket would be full).
func (l *sourceLimits) bucket(src string, now time.Time, create bool) *rate.Limiter {
	if b := l.bySource[src]; b != nil {
		return b
	}
	if len(l.bySource) >= maxSources && now.Sub(l.lastSweep) >= sourceSweepEvery {
		l.lastSweep = now
		for s, b := range l.bySource {
			if b.TokensAt(now) >= float64(l.burst) {
				delete(l.bySource, s)
			}
		}
	}
	if len(l.bySource) >= maxSources {
		return l.overflow
	}
	if !create {
		return nil
	}
	b := rate.NewLimiter(l.limit, l.burst)
	l.bySource[src] = b
	return b
}

// exhausted reports whether src has spent its NOT_FOUND answers, and how
// long until it may cause another.
func (l *sourceLimits) exhausted(sourceIP string, now time.Time) (bool, time.Duration) {
	src := sourceKey(sourceIP)
	if src == "" {
		return false, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucket(src, now, false)
	if b == nil {
		return false, 0
	}
	tokens := b.TokensAt(now)
	if tokens >= 1 {
		return false, 0
	}
	wait := time.Second
	if l.limit > 0 {
		wait = time.Duration((1 - tokens) / float64(l.limit) * float64(time.Second))
	}
	return true, wait
}

// spend takes one NOT_FOUND answer from src's bucket.
func (l *sourceLimits) spend(sourceIP string, now time.Time) {
	src := sourceKey(sourceIP)
	if src == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.bucket(src, now, true).AllowN(now, 1)
}

func (l *sourceLimits) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.bySource)
}
