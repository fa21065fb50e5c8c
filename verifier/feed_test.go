package verifier

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
)

// A verifier that cannot be sure it saw every feed event since its cursor
// drops its whole cache: a key revoked in the events it missed must not
// keep verifying from the cache.
func TestFeed_dropsTheWholeCacheWhenItMayHaveMissedEvents(t *testing.T) {
	const other = "OtherKey0001"
	for name, reply := range map[string]map[string]any{
		"reset":                 feedReply("ab12cd34.9", true),
		"gap_before_the_first":  feedReply("ab12cd34.7", false, ev(7, other, "revoked")),
		"hole_between_events":   feedReply("ab12cd34.8", false, ev(6, other, "revoked"), ev(8, other, "revoked")),
		"cursor_past_events":    feedReply("ab12cd34.9", false, ev(6, other, "revoked")),
		"cursor_past_no_events": feedReply("ab12cd34.9", false),
		"cursor_went_back":      feedReply("ab12cd34.3", false),
		"another_epoch":         feedReply("ffff0000.6", false, ev(6, other, "revoked")),
		"legacy_cursor_reply":   feedReply("1893456000000000000", false),
		"flush":                 feedReply("ab12cd34.6", false, ev(6, "", "flush")),
	} {
		t.Run(name, func(t *testing.T) {
			r := newRig(t, "ab12cd34.5", nil)
			key, _ := r.key(t, "t1")
			r.cached(t, Request{APIKey: key})
			r.eng.queue(reply)
			r.poll(t)
			if r.isCached(t, Request{APIKey: key}) {
				t.Fatal("key still answered from the cache")
			}
		})
	}
}

// Contiguous events drop only their keys; out-of-band events (seq 0) drop
// their key and are no gap; the next read asks from the reply's cursor.
func TestFeed_contiguousEventsDropOnlyTheirKeys(t *testing.T) {
	r := newRig(t, "ab12cd34.5", nil)
	kept, _ := r.key(t, "t1")
	revoked, revokedID := r.key(t, "t2")
	suspended, suspendedID := r.key(t, "t3")
	for _, k := range []string{kept, revoked, suspended} {
		r.cached(t, Request{APIKey: k})
	}
	r.eng.queue(feedReply("ab12cd34.7", false,
		ev(6, "OtherKey0001", "rotated"), ev(0, suspendedID, "suspended"), ev(7, revokedID, "revoked")))
	r.poll(t)
	r.poll(t) // no events: nothing changes
	if !r.isCached(t, Request{APIKey: kept}) {
		t.Fatal("a key no event named left the cache")
	}
	for _, k := range []string{revoked, suspended} {
		if r.isCached(t, Request{APIKey: k}) {
			t.Fatal("a key an event named is still cached")
		}
	}
	r.eng.mu.Lock()
	defer r.eng.mu.Unlock()
	if got := r.eng.sinces; len(got) != 3 || got[1] != "ab12cd34.5" || got[2] != "ab12cd34.7" {
		t.Fatalf("reads asked since %q", got)
	}
}

// An engine of the older format (cursor without '.', events without seq)
// is followed as before.
func TestFeed_olderEngineFormat(t *testing.T) {
	r := newRig(t, "1893456000000000000", nil)
	kept, _ := r.key(t, "")
	revoked, revokedID := r.key(t, "")
	r.cached(t, Request{APIKey: kept})
	r.cached(t, Request{APIKey: revoked})
	r.eng.queue(map[string]any{
		"events": []any{map[string]any{"key_id": revokedID, "kind": "revoked", "at": "2030-01-01T00:00:00Z"}},
		"cursor": "1893456001000000000",
	})
	r.poll(t)
	if !r.isCached(t, Request{APIKey: kept}) || r.isCached(t, Request{APIKey: revoked}) {
		t.Fatal("older feed not followed as before")
	}
	r.eng.queue(feedReply("1893456002000000000", true))
	r.poll(t)
	if r.isCached(t, Request{APIKey: kept}) {
		t.Fatal("reset did not drop the cache")
	}
}

// A full page means more events wait: one poll reads on until caught up,
// so a burst of revocations does not take a poll interval per 1,000.
func TestFeed_pollCatchesUpPastFullPages(t *testing.T) {
	r := newRig(t, "ab12cd34.5", nil)
	key, keyID := r.key(t, "t1")
	r.cached(t, Request{APIKey: key})
	page := make([]map[string]any, feedPage)
	for i := range page {
		page[i] = ev(6+i, fmt.Sprintf("Burst%07d", i), "revoked")
	}
	last := 5 + feedPage
	r.eng.queue(feedReply(fmt.Sprintf("ab12cd34.%d", last), false, page...),
		feedReply(fmt.Sprintf("ab12cd34.%d", last+1), false, ev(last+1, keyID, "revoked")))
	r.poll(t)
	if r.isCached(t, Request{APIKey: key}) {
		t.Fatal("the event after a full page waited for the next poll")
	}
}

// A reply the engine gave before a revocation, arriving after the feed
// dropped the key, must not be cached: it would verify the revoked key
// until the cache TTL.
func TestVerify_replyRacingARevocationIsNotCached(t *testing.T) {
	r := newRig(t, "ab12cd34.5", nil)
	key, keyID := r.key(t, "t1")
	pollErr := make(chan error, 1)
	r.eng.mu.Lock()
	r.eng.inVerify = func() {
		// The revocation lands and the verifier reads it while the VALID
		// answer is on its way.
		r.eng.mu.Lock()
		r.eng.inVerify = nil
		r.eng.feed = append(r.eng.feed, feedReply("ab12cd34.6", false, ev(6, keyID, "revoked")))
		r.eng.mu.Unlock()
		pollErr <- r.v.poll(context.Background())
	}
	r.eng.mu.Unlock()
	if res := r.verify(t, Request{APIKey: key}); !res.Valid {
		t.Fatal(res.Code)
	}
	if err := <-pollErr; err != nil {
		t.Fatal(err)
	}
	if r.isCached(t, Request{APIKey: key}) {
		t.Fatal("the reply that raced the revocation was cached")
	}
}

// Staleness is measured on the monotonic clock: a wall-clock step back
// does not delay failing closed, a step forward does not cause it.
func TestStaleness_followsTheMonotonicClock(t *testing.T) {
	t.Run("wall_clock_steps_back", func(t *testing.T) {
		r := newRig(t, "ab12cd34.5", nil)
		key, _ := r.key(t, "t1")
		r.cached(t, Request{APIKey: key})
		r.clk.wall.Add(-int64(time.Hour))
		r.clk.mono.Add(int64(6 * time.Second)) // past MaxStaleness, no feed read
		if res, err := r.v.Verify(t.Context(), Request{APIKey: key}); res.Code != CodeUnavailable || err != ErrStale {
			t.Fatalf("stale feed after a step back: %s %v", res.Code, err)
		}
		r.poll(t)
		if res := r.verify(t, Request{APIKey: key}); !res.Valid {
			t.Fatalf("feed back: %s", res.Code)
		}
	})
	t.Run("wall_clock_steps_forward", func(t *testing.T) {
		r := newRig(t, "ab12cd34.5", nil)
		key, _ := r.key(t, "t1")
		r.cached(t, Request{APIKey: key})
		r.clk.wall.Add(int64(time.Hour))
		r.clk.mono.Add(int64(time.Second))
		if res := r.verify(t, Request{APIKey: key}); !res.Valid {
			t.Fatalf("fresh feed after a step forward: %s", res.Code)
		}
	})
	t.Run("behind_the_feed_is_stale", func(t *testing.T) {
		// A verifier that read pages but never reached the head has not
		// been caught up: it fails closed after MaxStaleness.
		r := newRig(t, "ab12cd34.5", nil)
		key, _ := r.key(t, "t1")
		r.cached(t, Request{APIKey: key})
		next := 6
		for range maxFeedPages {
			page := make([]map[string]any, feedPage)
			for i := range page {
				page[i] = ev(next, "OtherKey0001", "revoked")
				next++
			}
			r.eng.queue(feedReply(fmt.Sprintf("ab12cd34.%d", next-1), false, page...))
		}
		r.clk.mono.Add(int64(4 * time.Second))
		r.poll(t)
		r.clk.mono.Add(int64(2 * time.Second))
		if res, _ := r.v.Verify(t.Context(), Request{APIKey: key}); res.Code != CodeUnavailable {
			t.Fatalf("behind the feed past MaxStaleness: %s", res.Code)
		}
	})
}

// With the default clocks the monotonic time comes from time.Now's own
// monotonic reading (no second clock read per request): a feed read ages
// on it, and a fresh read clears it.
func TestStaleness_defaultClocks(t *testing.T) {
	r := newRig(t, "ab12cd34.5", func(c *Config) { c.Now, c.monotonic = nil, nil })
	if !r.v.monoFromNow {
		t.Fatal("default clocks do not take the monotonic time from time.Now")
	}
	key, _ := r.key(t, "t1")
	if res := r.verify(t, Request{APIKey: key}); !res.Valid {
		t.Fatalf("fresh feed: %s", res.Code)
	}
	r.v.lastFeedOK.Add(-int64(6 * time.Second))
	if res, _ := r.v.Verify(t.Context(), Request{APIKey: key}); res.Code != CodeUnavailable {
		t.Fatalf("feed read 6 s ago: %s", res.Code)
	}
	r.poll(t)
	if res := r.verify(t, Request{APIKey: key}); !res.Valid {
		t.Fatalf("feed back: %s", res.Code)
	}
}

// Approved scopes never outlive the engine answer that gave them by more
// than CacheTTL: a refresh starts from the new answer, and extending an
// entry's scopes does not extend its life.
func TestApprovals_doNotOutliveTheirAnswer(t *testing.T) {
	r := newRig(t, "ab12cd34.5", nil) // CacheTTL 1 minute
	key, _ := r.key(t, "t1", "read", "trade")
	read, trade := Request{APIKey: key, Scopes: []string{"read"}}, Request{APIKey: key, Scopes: []string{"trade"}}
	r.cached(t, read) // t=0: read approved
	r.wait(t, 30*time.Second)
	r.cached(t, trade) // t=30s: trade approved too, read kept
	r.wait(t, 20*time.Second)
	if !r.isCached(t, read) || !r.isCached(t, trade) {
		t.Fatal("both scopes should be cached within the first answer's TTL")
	}
	r.wait(t, 15*time.Second) // t=65s: past the first answer's TTL
	if r.isCached(t, trade) {
		t.Fatal("adding a scope extended the entry past the first answer's TTL")
	}
	// The refresh approved trade only; read was approved 65 s ago.
	if r.isCached(t, read) {
		t.Fatal("an approval was carried across a refresh")
	}
}

// An engine answer refusing a key (asked for a scope the cache had not
// approved) drops that key's cached VALID entry at once, without waiting
// for the feed; a refusal of a wrong secret for its key_id does not.
func TestVerify_engineRefusalDropsTheCachedEntry(t *testing.T) {
	r := newRig(t, "ab12cd34.5", nil)
	key, keyID := r.key(t, "t1", "read", "trade")
	other, _ := r.key(t, "t2", "read")
	read := Request{APIKey: key, Scopes: []string{"read"}}
	r.cached(t, read)
	r.cached(t, Request{APIKey: other})
	if res := r.verify(t, Request{APIKey: forge(keyID, 'z'), Scopes: []string{"trade"}}); res.Code != "NOT_FOUND" {
		t.Fatal(res.Code)
	}
	if !r.isCached(t, read) {
		t.Fatal("a forged key with its key_id evicted a real key")
	}
	r.eng.answer(key, map[string]any{"valid": false, "code": "REVOKED", "key_id": keyID})
	if res := r.verify(t, Request{APIKey: key, Scopes: []string{"trade"}}); res.Code != "REVOKED" {
		t.Fatal(res.Code)
	}
	if res := r.verify(t, read); res.Valid {
		t.Fatal("the key the engine called REVOKED still verifies from the cache")
	}
	if !r.isCached(t, Request{APIKey: other}) {
		t.Fatal("another key left the cache")
	}
}

// A bulk revocation event drops every cached key of its role or
// environment, and only those; an event of a kind this verifier does not
// know drops everything.
func TestFeed_bulkRevocationDropsItsRoleOrEnvironment(t *testing.T) {
	bulk := func(kind, field, name string) map[string]any {
		e := ev(6, "", kind)
		e[field] = name
		e["revoked_before"] = "2030-01-01T00:00:00Z"
		return e
	}
	for name, tc := range map[string]struct {
		event        map[string]any
		dropR, dropS bool
	}{
		"role r":             {bulk("revoked_role", "role", "r"), true, false},
		"role s":             {bulk("revoked_role", "role", "s"), false, true},
		"role unnamed":       {ev(6, "", "revoked_role"), true, true},
		"environment prod":   {bulk("revoked_environment", "environment", "prod"), true, true},
		"environment dev":    {bulk("revoked_environment", "environment", "dev"), false, false},
		"unknown kind":       {ev(6, "OtherKey0001", "revoked_tenant"), true, true},
		"unknown kind no id": {ev(6, "", "revoked_tenant"), true, true},
	} {
		t.Run(name, func(t *testing.T) {
			r := newRig(t, "ab12cd34.5", nil)
			ofR, _ := r.key(t, "t1")
			k, err := keyformat.Generate("ck", "prod")
			if err != nil {
				t.Fatal(err)
			}
			ofS := k.Raw()
			answer := r.valid(k.KeyID, "t2")
			answer["role"] = "s"
			r.eng.answer(ofS, answer)
			r.cached(t, Request{APIKey: ofR})
			r.cached(t, Request{APIKey: ofS})
			r.eng.queue(feedReply("ab12cd34.6", false, tc.event))
			r.poll(t)
			if got := !r.isCached(t, Request{APIKey: ofR}); got != tc.dropR {
				t.Errorf("key of role r dropped: %v, want %v", got, tc.dropR)
			}
			if got := !r.isCached(t, Request{APIKey: ofS}); got != tc.dropS {
				t.Errorf("key of role s dropped: %v, want %v", got, tc.dropS)
			}
		})
	}
}

// A wall clock stepped back must not bring back a cached key whose end the
// verifier has already seen pass: expiry is read on a wall clock held at
// the latest time Verify saw (staleness stays on the monotonic clock).
func TestVerify_wallClockSteppedBackKeepsAnEndedKeyEnded(t *testing.T) {
	r := newRig(t, "ab12cd34.5", nil)
	apiKey, id := r.key(t, "t1")
	answer := r.valid(id, "t1")
	answer["expires_at"] = r.clk.now().Add(30 * time.Second).Format(time.RFC3339)
	r.eng.answer(apiKey, answer)
	req := Request{APIKey: apiKey}
	r.cached(t, req)

	r.clk.wall.Add(int64(40 * time.Second)) // past the key's end
	if res := r.verify(t, req); res.Cached {
		t.Fatalf("past its end the key was answered from the cache: %s", res.Code)
	}
	r.clk.wall.Add(-int64(40 * time.Second)) // NTP steps the clock back
	if res := r.verify(t, req); res.Cached {
		t.Fatalf("after the clock stepped back, the ended key was answered from the cache again: %s", res.Code)
	}
}

// The held wall clock also moves with feed reads: a verifier that served
// nothing while time passed still refuses, after a step back, to answer a
// key whose end passed from its cache.
func TestVerify_feedReadsMoveTheHeldWallClock(t *testing.T) {
	r := newRig(t, "ab12cd34.5", nil)
	apiKey, id := r.key(t, "t1")
	answer := r.valid(id, "t1")
	answer["expires_at"] = r.clk.now().Add(30 * time.Second).Format(time.RFC3339)
	r.eng.answer(apiKey, answer)
	req := Request{APIKey: apiKey}
	r.cached(t, req)

	r.clk.wall.Add(int64(40 * time.Second)) // time passes; only the feed is read
	r.poll(t)
	r.clk.wall.Add(-int64(40 * time.Second)) // NTP steps the clock back
	if res := r.verify(t, req); res.Cached {
		t.Fatalf("after an idle spell and a step back, the ended key was answered from the cache: %s", res.Code)
	}
}
