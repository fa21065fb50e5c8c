package verifier

import (
	"testing"
	"time"
)

// Status tells when the feed was last read, the cursor, whether the
// verifier fails closed, the cache's size and hits and misses, and the uses
// waiting to be reported.
func TestStatus(t *testing.T) {
	r := newRig(t, "ab12cd34.5", nil)
	s := r.v.Status()
	if s.LastFeedRead.IsZero() || s.Stale || s.Cursor != "ab12cd34.5" || s.CacheEntries != 0 || s.PendingUsage != 0 || s.CacheHits != 0 || s.CacheMisses != 0 {
		t.Fatalf("fresh: %+v", s)
	}
	first := s.LastFeedRead

	key, _ := r.key(t, "ticket")
	req := Request{APIKey: key, SourceIP: "10.0.0.1"}
	r.cached(t, req)                             // a miss, then a hit
	r.isCached(t, req)                           // a hit
	r.verify(t, Request{APIKey: "ck_prod_nope"}) // #nosec G101 -- not a key: MALFORMED, counted neither as a hit nor a miss
	s = r.v.Status()
	if s.CacheEntries != 1 || s.CacheHits != 2 || s.CacheMisses != 1 || s.PendingUsage != 2 {
		t.Fatalf("after use: %+v", s)
	}

	r.eng.queue(feedReply("ab12cd34.6", false, ev(6, "zzzzzzzzzzzz", "revoked")))
	r.wait(t, 2*time.Second)
	s = r.v.Status()
	if s.Cursor != "ab12cd34.6" || s.LastFeedRead.Sub(first) != 2*time.Second || s.FeedAge != 0 {
		t.Fatalf("after a poll: %+v (first read %s)", s, first)
	}
	if err := r.v.ReportUsage(t.Context()); err != nil {
		t.Fatal(err)
	}
	if s = r.v.Status(); s.PendingUsage != 0 {
		t.Fatalf("after the report: %+v", s)
	}

	r.clk.advance(6 * time.Second) // past MaxStaleness without a read
	if s = r.v.Status(); !s.Stale || s.FeedAge != 6*time.Second {
		t.Fatalf("stale: %+v", s)
	}
}

// Cursor is Status's cursor without its walk of the cache, and it moves
// only once the events up to it have changed the cache: a caller that sees
// the cursor past a revocation never finds the key still cached.
func TestCursor(t *testing.T) {
	r := newRig(t, "ab12cd34.5", nil)
	if c := r.v.Cursor(); c != "ab12cd34.5" {
		t.Fatalf("fresh: %q", c)
	}
	key, id := r.key(t, "ticket")
	req := Request{APIKey: key}
	r.cached(t, req)
	r.eng.queue(feedReply("ab12cd34.6", false, ev(6, id, "revoked")))
	r.wait(t, 2*time.Second)
	if c, s := r.v.Cursor(), r.v.Status(); c != "ab12cd34.6" || s.Cursor != c || s.CacheEntries != 0 {
		t.Fatalf("after the revocation: Cursor %q, Status %+v", c, s)
	}
}
