package verifier

import (
	"context"
	"runtime"
	"slices"
	"testing"
	"time"
)

// realClocks makes a rig run on the default clocks: these tests are about
// how long reads are held.
func realClocks(tune func(*Config)) func(*Config) {
	return func(c *Config) {
		c.Now, c.monotonic = nil, nil
		if tune != nil {
			tune(c)
		}
	}
}

func (e *fakeEngine) waitsSeen() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.waits)
}

func (e *fakeEngine) set(f func(e *fakeEngine)) {
	e.mu.Lock()
	f(e)
	e.mu.Unlock()
}

func eventually(t *testing.T, within time.Duration, what string, f func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !f() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start)
}

// Against an engine that blocks, the verifier holds a read at the head of
// the feed (wait = MaxStaleness/2 in seconds) and a revocation written
// meanwhile reaches it at once, not at the next poll.
func TestFollow_blockingReadWakesTheVerifier(t *testing.T) {
	rb := newBlockingRig(t, "e1.5", 60, func(c *Config) { c.PollInterval = time.Hour })
	key, id := rb.key(t, "t1", "read")
	rb.cached(t, Request{APIKey: key, Scopes: []string{"read"}})
	eventually(t, 5*time.Second, "a held read", func() bool { return slices.Contains(rb.eng.waitsSeen(), "2") })
	time.Sleep(50 * time.Millisecond)
	queued := time.Now()
	rb.eng.queue(feedReply("e1.6", false, ev(6, id, "revoked")))
	took := eventually(t, 2*time.Second, "the revocation reaching the cache", func() bool { return rb.v.cache.get(id) == nil })
	t.Logf("revocation applied %s after the engine had it", took)
	if took > time.Second {
		t.Fatalf("a held read took %s to deliver the revocation", time.Since(queued))
	}
	// Each held read carried the cursor the verifier had.
	if w := rb.eng.waitsSeen(); w[0] != "" {
		t.Fatalf("the first read (no cursor yet) must not wait: %q", w)
	}
}

// newBlockingRig is newRig against a fake engine that answers blocking
// reads, on the default clocks.
func newBlockingRig(t *testing.T, cursor string, waitMax int, tune func(*Config)) *rig {
	t.Helper()
	return newRigWith(t, cursor, func(e *fakeEngine) { e.waitMax = waitMax }, realClocks(tune))
}

// A wait that ends with nothing written keeps the cursor, and an idle
// verifier whose reads are held stays fresh: a held read that came back
// empty after its whole wait counts as contact at its end.
func TestFollow_idleWaitsKeepTheCursorAndTheVerifierFresh(t *testing.T) {
	r := newBlockingRig(t, "e1.5", 60, func(c *Config) { c.MaxStaleness = 2 * time.Second; c.PollInterval = time.Hour })
	key, _ := r.key(t, "t1", "read")
	r.cached(t, Request{APIKey: key, Scopes: []string{"read"}})
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) {
		res, err := r.v.Verify(t.Context(), Request{APIKey: key, Scopes: []string{"read"}})
		if err != nil || !res.Valid {
			t.Fatalf("an idle verifier whose reads are held went %s: %v", res.Code, err)
		}
		// Dated at the end of its wait, the last held read is never more
		// than a wait (1 s) and a round trip old; dated when sent, it
		// would reach two waits, past MaxStaleness.
		if age := r.v.cfg.monotonic() - time.Duration(r.v.lastFeedOK.Load()); age > 1500*time.Millisecond {
			t.Fatalf("last contact %s ago with reads held 1 s", age)
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.eng.mu.Lock()
	sinces, waits := slices.Clone(r.eng.sinces), slices.Clone(r.eng.waits)
	r.eng.mu.Unlock()
	if len(waits) < 3 || len(waits) > 8 {
		t.Fatalf("%d reads in 4 s of 1 s waits: %q", len(waits), waits)
	}
	for i, s := range sinces[1:] {
		if s != "e1.5" || waits[i+1] != "1" {
			t.Fatalf("read %d: since %q wait %q; want the same cursor, wait 1", i+1, s, waits[i+1])
		}
	}
}

// A Vault that takes requests and never answers them: the verifier still
// fails closed within MaxStaleness (a held read counts only once answered).
func TestFollow_hungEngineFailsClosed(t *testing.T) {
	r := newBlockingRig(t, "e1.5", 60, func(c *Config) { c.MaxStaleness = 2 * time.Second; c.PollInterval = 50 * time.Millisecond })
	key, _ := r.key(t, "t1", "read")
	r.cached(t, Request{APIKey: key, Scopes: []string{"read"}})
	r.eng.set(func(e *fakeEngine) { e.hang = true })
	hungAt := time.Now()
	took := eventually(t, 5*time.Second, "failing closed", func() bool {
		res, _ := r.v.Verify(t.Context(), Request{APIKey: key, Scopes: []string{"read"}})
		return res.Code == CodeUnavailable
	})
	// A read the engine took just before it hung is still answered, empty,
	// at the end of its wait (1 s): the verifier was caught up until then,
	// and fails closed MaxStaleness (2 s) later.
	if took > 3*time.Second+time.Second/2 {
		t.Fatalf("failed closed %s after the engine hung (max staleness 2 s)", took)
	}
	t.Logf("failed closed %s after the hang", time.Since(hungAt))
	r.eng.set(func(e *fakeEngine) { e.hang = false })
	eventually(t, 5*time.Second, "recovering", func() bool {
		res, _ := r.v.Verify(t.Context(), Request{APIKey: key, Scopes: []string{"read"}})
		return res.Valid
	})
}

// An engine without blocking reads: no wait_max in its replies means the
// verifier polls every PollInterval and never sends wait; one that refuses
// the wait field (a 400) is polled too.
func TestFollow_fallsBackToPolling(t *testing.T) {
	t.Run("no_wait_max", func(t *testing.T) {
		r := newRigWith(t, "e1.5", nil, realClocks(func(c *Config) { c.PollInterval = 50 * time.Millisecond }))
		time.Sleep(600 * time.Millisecond)
		waits := r.eng.waitsSeen()
		if n := len(waits); n < 5 || n > 16 {
			t.Fatalf("%d reads in 600 ms of 50 ms polling", n)
		}
		for _, w := range waits {
			if w != "" {
				t.Fatalf("a wait sent to an engine that does not block: %q", waits)
			}
		}
	})
	t.Run("refused", func(t *testing.T) {
		r := newRigWith(t, "e1.5", func(e *fakeEngine) { e.waitMax, e.refuseWait = 60, true },
			realClocks(func(c *Config) { c.PollInterval = 50 * time.Millisecond }))
		key, id := r.key(t, "t1", "read")
		r.cached(t, Request{APIKey: key, Scopes: []string{"read"}})
		time.Sleep(400 * time.Millisecond)
		waits := r.eng.waitsSeen()
		held := 0
		for _, w := range waits {
			if w != "" {
				held++
			}
		}
		if held != 1 || len(waits) < 4 {
			t.Fatalf("reads after a refused wait: %q; want one refused wait, then polls", waits)
		}
		r.eng.queue(feedReply("e1.6", false, ev(6, id, "revoked")))
		eventually(t, 2*time.Second, "a polled revocation", func() bool { return r.v.cache.get(id) == nil })
		if res, _ := r.v.Verify(t.Context(), Request{APIKey: key, Scopes: []string{"read"}}); res.Code == CodeUnavailable {
			t.Fatal("a verifier polling an engine without blocking reads went stale")
		}
	})
}

// Close ends a held read at once and leaves no goroutine behind.
func TestFollow_closeEndsAHeldRead(t *testing.T) {
	before := runtime.NumGoroutine()
	eng := &fakeEngine{cursor: "e1.5", answers: map[string]map[string]any{}, waitMax: 60}
	v, srvClose := startOn(t, eng, realClocks(func(c *Config) { c.MaxStaleness = 30 * time.Second }))
	eventually(t, 5*time.Second, "a held read", func() bool { return slices.Contains(eng.waitsSeen(), "15") })
	start := time.Now()
	if err := v.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("Close took %s with a read held", took)
	}
	srvClose()
	eventually(t, 5*time.Second, "goroutines back to where they were", func() bool {
		runtime.GC()
		return runtime.NumGoroutine() <= before
	})
}
