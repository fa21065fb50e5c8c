package verifier

import "time"

// Status is what a verifier can tell about itself, for health checks and
// metrics (the gateway's /readyz and /metrics come from it).
type Status struct {
	// LastFeedRead is when the verifier was last caught up with the
	// revocations feed: when the read that reached the feed's head was
	// sent (for a blocking read the engine held for its whole wait and
	// answered empty, the end of that wait). Zero before the first one (New makes one, so never zero for a
	// verifier New returned).
	LastFeedRead time.Time
	// FeedAge is how long ago that was, on the monotonic clock (what
	// staleness is measured on).
	FeedAge time.Duration
	// Stale is true while the verifier fails closed: it has not been
	// caught up with the feed for longer than MaxStaleness.
	Stale bool
	// Cursor is the feed position the verifier has applied.
	Cursor string
	// CacheEntries is how many keys are cached.
	CacheEntries int
	// PendingUsage is how many uses have been counted and not yet
	// reported to the engine.
	PendingUsage int
	// CacheHits counts requests answered from the cache; CacheMisses
	// those the cache could not answer (the engine was asked, or the
	// NOT_FOUND memory or a source limit answered). Requests refused
	// offline (MALFORMED, ENVIRONMENT_MISMATCH, UNAVAILABLE) are neither.
	CacheHits, CacheMisses uint64
}

// Status reports the verifier's state. It walks the cache to count pending
// usage: cheap enough for a metrics scrape, not for every request.
func (v *Verifier) Status() Status {
	mono := v.cfg.monotonic()
	last := time.Duration(v.lastFeedOK.Load())
	s := Status{
		FeedAge:     mono - last,
		Stale:       mono-last > v.cfg.MaxStaleness,
		CacheHits:   v.cache.retiredUses.Load() + v.refusedFromCache.Load(),
		CacheMisses: v.misses.Load(),
	}
	if v.polled.Load() {
		s.LastFeedRead = v.start.Add(last)
	}
	if c := v.cursorSeen.Load(); c != nil {
		s.Cursor = *c
	}
	pending := uint64(0)
	v.cache.each(func(_ string, e *entry) {
		s.CacheEntries++
		uses := e.uses.Load()
		s.CacheHits += uses
		pending += uses - e.reported.Load()
	})
	v.usageMu.Lock()
	for _, u := range v.usage {
		pending += u.count
	}
	v.usageMu.Unlock()
	s.PendingUsage = int(min(pending, uint64(1<<62)))
	return s
}

// Cursor is Status().Cursor without the walk of the cache: the feed
// position the verifier has applied (every event up to it has changed the
// cache before the cursor moves), "" before the first read. One atomic
// load, for callers that ask often: a probe comparing pods' positions, or
// the bench's fleet, which watches 1,000 verifiers catch up.
func (v *Verifier) Cursor() string {
	if c := v.cursorSeen.Load(); c != nil {
		return *c
	}
	return ""
}
