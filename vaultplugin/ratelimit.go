package vaultplugin

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// rateLimiters holds a token bucket per key, in memory only: a limit is a
// per-node guard against runaway clients, not an accounting record.
type rateLimiters struct {
	mu sync.Mutex
	m  map[string]*rate.Limiter
}

func newRateLimiters() *rateLimiters {
	return &rateLimiters{m: make(map[string]*rate.Limiter)}
}

// allow takes a token from the key's bucket; when none is left it reports
// how long until one will be.
func (l *rateLimiters) allow(rec *keyRecord, now time.Time) (bool, time.Duration) {
	if rec.RateLimit <= 0 {
		return true, 0
	}
	l.mu.Lock()
	lim, ok := l.m[rec.KeyID]
	if !ok {
		burst := rec.RateBurst
		if burst <= 0 {
			burst = int(math.Ceil(rec.RateLimit))
		}
		lim = rate.NewLimiter(rate.Limit(rec.RateLimit), burst)
		l.m[rec.KeyID] = lim
	}
	l.mu.Unlock()
	// One reservation: taken when a token is there, handed back (and its
	// wait reported) when not.
	r := lim.ReserveN(now, 1)
	if delay := r.DelayFrom(now); delay > 0 {
		r.CancelAt(now)
		return false, delay
	}
	return true, 0
}

func (l *rateLimiters) drop(keyID string) {
	l.mu.Lock()
	delete(l.m, keyID)
	l.mu.Unlock()
}
