package vaultplugin

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
	"github.com/hashicorp/vault/sdk/logical"
)

// heldRead is a blocking read of the feed running in its own goroutine.
type heldRead struct {
	done chan *logical.Response
	sent time.Time
}

// holdFeed starts a blocking read of e's feed from cursor.
func (e *testEnv) holdFeed(ctx context.Context, cursor, wait string) *heldRead {
	h := &heldRead{done: make(chan *logical.Response, 1), sent: time.Now()}
	go func() {
		resp, err := e.b.HandleRequest(ctx, &logical.Request{
			Operation: logical.ReadOperation, Path: "revocations", Storage: e.storage,
			Data: map[string]any{"since": cursor, "wait": wait},
		})
		if err != nil || resp == nil || resp.IsError() {
			e.t.Errorf("blocking read: %v %v", err, resp)
			resp = nil
		}
		h.done <- resp
	}()
	return h
}

// answer waits for the held read's reply.
func (h *heldRead) answer(t *testing.T, within time.Duration) (*logical.Response, time.Duration) {
	t.Helper()
	select {
	case r := <-h.done:
		if r == nil {
			t.FailNow()
		}
		return r, time.Since(h.sent)
	case <-time.After(within):
		t.Fatalf("no answer within %s", within)
		return nil, 0
	}
}

func (h *heldRead) stillHeld(t *testing.T) {
	t.Helper()
	select {
	case r := <-h.done:
		t.Fatalf("answered before anything happened: %v", r)
	default:
	}
}

// standbyOf is a second node over e's storage: it learns of the active
// node's writes only through Invalidate, as a standby does.
func standbyOf(t *testing.T, active *testEnv) *testEnv {
	s := newTestEnv(t)
	s.storage.Storage = active.storage.Storage
	s.b.storage = s.storage
	return s
}

// A reader waiting on the active node and one waiting on a standby are both
// woken by a revocation: the active node's by the write, the standby's by
// the Invalidate of the event Vault sends it.
func TestFeedWait_activeAndStandbyReadersWokenByARevocation(t *testing.T) {
	active := newTestEnv(t)
	active.role("r", map[string]any{"environment": "prod"})
	k, _ := active.issue("r", nil)
	_, cursor, _ := active.feed("")
	standby := standbyOf(t, active)
	if _, c, reset := standby.feed(cursor); reset || c != cursor {
		t.Fatalf("the standby's first read: cursor %q reset %v", c, reset)
	}

	onActive := active.holdFeed(t.Context(), cursor, "30s")
	onStandby := standby.holdFeed(t.Context(), cursor, "30s")
	time.Sleep(200 * time.Millisecond)
	onActive.stillHeld(t)
	onStandby.stillHeld(t)

	active.ok(logical.DeleteOperation, "keys/"+k["key_id"].(string), nil)
	r, took := onActive.answer(t, 5*time.Second)
	if evs := r.Data["events"].([]map[string]any); len(evs) != 1 || evs[0]["key_id"] != k["key_id"] || r.Data["cursor"] != feedEpochFallback+".1" {
		t.Fatalf("active node's reader woken with %v", r.Data)
	}
	t.Logf("active node's reader answered %s after it was sent", took)
	time.Sleep(100 * time.Millisecond)
	onStandby.stillHeld(t) // nothing told the standby yet

	standby.b.invalidate(t.Context(), feedKey(1))
	r, _ = onStandby.answer(t, 5*time.Second)
	if evs := r.Data["events"].([]map[string]any); len(evs) != 1 || evs[0]["key_id"] != k["key_id"] || r.Data["cursor"] != feedEpochFallback+".1" {
		t.Fatalf("standby's reader woken with %v", r.Data)
	}
}

// A wait that ends with nothing written answers the cursor it was given.
// A cursor the feed cannot continue (events tidied after it, another
// mount's) is answered at once, held or not, with a reset: the verifier
// drops its cache on it (verifier TestFeed_dropsTheWholeCacheWhenItMayHaveMissedEvents).
func TestFeedWait_endsWithTheSameCursorAndResetsAtOnce(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod", "ttl": "47h", "max_ttl": "47h"})
	a, _ := e.issue("r", nil)
	b, _ := e.issue("r", nil)
	_, before, _ := e.feed("")
	e.ok(logical.DeleteOperation, "keys/"+a["key_id"].(string), nil)
	e.ok(logical.DeleteOperation, "keys/"+b["key_id"].(string), nil)
	_, head, _ := e.feed(before)

	r, took := e.holdFeed(t.Context(), head, "1").answer(t, 10*time.Second)
	if r.Data["cursor"] != head || len(r.Data["events"].([]map[string]any)) != 0 || r.Data["reset"] != false || took < time.Second {
		t.Fatalf("an idle wait: %v after %s; want cursor %q, no events", r.Data, took, head)
	}

	e.clock.Add(feedRetention + time.Hour)
	e.ok(logical.UpdateOperation, "tidy", nil)
	for _, stale := range []string{before, "0b1e2c3d.1"} {
		r, took := e.holdFeed(t.Context(), stale, "30").answer(t, 5*time.Second)
		if r.Data["reset"] != true || r.Data["cursor"] != head || took > 2*time.Second {
			t.Fatalf("cursor %q held: %v after %s; want a reset to %q at once", stale, r.Data, took, head)
		}
	}
}

// Many readers held at once, woken by an event or ended by their request,
// leave no goroutine of the engine behind.
func TestFeedWait_manyWaitersLeakNoGoroutines(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod"})
	k, _ := e.issue("r", nil)
	_, cursor, _ := e.feed("")
	settle := func() int {
		runtime.GC()
		time.Sleep(50 * time.Millisecond)
		return runtime.NumGoroutine()
	}
	before := settle()
	const n = 500

	// Woken by an event.
	held := make([]*heldRead, n)
	for i := range held {
		held[i] = e.holdFeed(t.Context(), cursor, "30")
	}
	time.Sleep(300 * time.Millisecond)
	if g := runtime.NumGoroutine(); g < before+n {
		t.Fatalf("%d goroutines with %d reads held (%d before)", g, n, before)
	}
	e.ok(logical.DeleteOperation, "keys/"+k["key_id"].(string), nil)
	for _, h := range held {
		if r, _ := h.answer(t, 10*time.Second); len(r.Data["events"].([]map[string]any)) != 1 {
			t.Fatalf("woken with %v", r.Data)
		}
	}

	// Ended by their requests' contexts (a client that goes away).
	_, cursor, _ = e.feed("")
	ctx, cancel := context.WithCancel(t.Context())
	for i := range held {
		held[i] = e.holdFeed(ctx, cursor, "30")
	}
	time.Sleep(300 * time.Millisecond)
	cancel()
	for _, h := range held {
		h.answer(t, 10*time.Second)
	}
	deadline := time.Now().Add(5 * time.Second)
	after := settle()
	for after > before && time.Now().Before(deadline) {
		after = settle()
	}
	if after > before {
		t.Fatalf("%d goroutines after %d held reads ended, %d before", after, 2*n, before)
	}
}

// A revocation wakes every reader held at the head, all at one cursor: on
// the node that wrote the event they are answered from its copy, so the
// burst reads the event from storage no times at all, not once per reader.
// A reader behind the copies still reads storage (and the copy it takes
// serves the next).
func TestFeedWait_aBurstOfReadersAtOneCursorReadsStorageOnce(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod"})
	k, _ := e.issue("r", nil)
	_, cursor, _ := e.feed("")
	const n = 200
	held := make([]*heldRead, n)
	for i := range held {
		held[i] = e.holdFeed(t.Context(), cursor, "30")
	}
	time.Sleep(200 * time.Millisecond)
	e.ok(logical.DeleteOperation, "keys/"+k["key_id"].(string), nil)
	for _, h := range held {
		if r, _ := h.answer(t, 10*time.Second); len(r.Data["events"].([]map[string]any)) != 1 {
			t.Fatalf("woken with %v", r.Data)
		}
	}
	if got := e.storage.readsOf(feedKey(1)); got != 0 {
		t.Fatalf("%d readers woken by one event read it from storage %d times; want 0 (the writer's copy)", n, got)
	}

	// Another node learns of the event by Invalidate and holds no copy:
	// its first reader reads storage, the readers after it read that
	// reader's copy. (Readers woken at the same instant are not made to
	// wait for one another, so each may read storage once.)
	standby := standbyOf(t, e)
	standby.b.invalidate(t.Context(), feedKey(1))
	for range 20 {
		if evs, _, reset := standby.feed(cursor); reset || len(evs) != 1 {
			t.Fatalf("the standby's read: %v reset %v", evs, reset)
		}
	}
	if got := standby.storage.readsOf(feedKey(1)); got != 1 {
		t.Fatalf("20 reads on the standby read the event from storage %d times; want 1", got)
	}
}

// A suspension decided in memory (not yet a feed event) answers a held
// read at once: the read waits on the decision, not on a timer.
func TestFeedWait_aSuspensionAnswersAHeldReadAtOnce(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod", "on_anomaly": "suspend", "anomaly_rate": 0.1})
	k, _ := e.issue("r", nil)
	e.wantCode(map[string]any{"api_key": k["api_key"]}, wire.CodeValid)
	_, cursor, _ := e.feed("")

	decided := e.b.anomalies.suspensionDecided()
	h := e.holdFeed(t.Context(), cursor, "30")
	time.Sleep(100 * time.Millisecond)
	h.stillHeld(t)
	e.wantCode(map[string]any{"api_key": k["api_key"]}, wire.CodeSuspended)
	select {
	case <-decided:
	default:
		t.Fatal("deciding a suspension did not close the channel held reads wait on")
	}
	r, _ := h.answer(t, 5*time.Second)
	evs := r.Data["events"].([]map[string]any)
	if len(evs) != 1 || evs[0]["key_id"] != k["key_id"] || evs[0]["kind"] != eventSuspended || evs[0]["seq"] != uint64(0) {
		t.Fatalf("held read answered with %v; want the unwritten suspension", r.Data)
	}
}
