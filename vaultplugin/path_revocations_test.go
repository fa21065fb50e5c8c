package vaultplugin

import (
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
	"github.com/hashicorp/vault/sdk/logical"
)

func (e *testEnv) feed(since string) (events []map[string]any, cursor string, reset bool) {
	e.t.Helper()
	d := e.ok(logical.ReadOperation, "revocations", map[string]any{"since": since}).Data
	return d["events"].([]map[string]any), d["cursor"].(string), d["reset"].(bool)
}

func TestRevocations_feedCarriesRevokeRotateSuspend(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod", "on_anomaly": "suspend", "anomaly_rate": 0.1})
	_, cursor, _ := e.feed("")
	a, _ := e.issue("r", nil)
	b, _ := e.issue("r", nil)
	c, _ := e.issue("r", nil)
	e.clock.Add(time.Second)
	e.ok(logical.DeleteOperation, "keys/"+a["key_id"].(string), nil)
	e.ok(logical.UpdateOperation, "keys/"+b["key_id"].(string)+"/rotate", map[string]any{"grace": "30s"})
	e.wantCode(map[string]any{"api_key": c["api_key"]}, wire.CodeValid)
	e.wantCode(map[string]any{"api_key": c["api_key"]}, wire.CodeSuspended)
	// Before the flush the suspension is already in the feed, from memory,
	// out of the sequence (seq 0).
	early, _, _ := e.feed(cursor)
	if len(early) != 3 || early[2]["seq"] != uint64(0) || early[2]["kind"] != eventSuspended {
		t.Fatalf("unflushed suspension missing from the feed: %v", early)
	}
	if err := e.b.periodic(t.Context(), &logical.Request{Storage: e.storage}); err != nil {
		t.Fatal(err)
	}
	events, next, reset := e.feed(cursor)
	if reset || len(events) != 3 {
		t.Fatalf("events %v reset %v", events, reset)
	}
	got := map[string]string{}
	for i, ev := range events {
		if ev["seq"] != uint64(i+1) {
			t.Fatalf("event %d has seq %v: the feed must number events 1, 2, 3 ...", i, ev["seq"])
		}
		got[ev["key_id"].(string)] = ev["kind"].(string)
	}
	if got[a["key_id"].(string)] != eventRevoked || got[b["key_id"].(string)] != eventRotated || got[c["key_id"].(string)] != eventSuspended {
		t.Fatalf("kinds: %v", got)
	}
	if want := feedEpochFallback + ".3"; next != want {
		t.Fatalf("cursor %q, want %q", next, want)
	}
	if again, cur, _ := e.feed(next); len(again) != 0 || cur != next {
		t.Fatalf("events resent past the cursor: %v (cursor %q)", again, cur)
	}
	// A second revocation of the same key writes its event again (it may
	// be the retry of a revocation whose event write failed).
	e.ok(logical.DeleteOperation, "keys/"+a["key_id"].(string), nil)
	if again, _, _ := e.feed(next); len(again) != 1 || again[0]["kind"] != eventRevoked || again[0]["seq"] != uint64(4) {
		t.Fatalf("re-revoke: %v", again)
	}
}

func TestRevocations_staleCursorResetsAndTidyPrunes(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod", "ttl": "47h", "max_ttl": "47h"})
	_, cursor, _ := e.feed("")
	a, _ := e.issue("r", nil)
	b, _ := e.issue("r", nil)
	e.ok(logical.DeleteOperation, "keys/"+a["key_id"].(string), nil)
	e.ok(logical.DeleteOperation, "keys/"+b["key_id"].(string), nil)
	// A legacy time-keyed event, as earlier builds wrote them.
	if err := e.storage.Put(t.Context(), &logical.StorageEntry{Key: revocationPrefix + "01795000000000000000-" + a["key_id"].(string), Value: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if evs, _, reset := e.feed(cursor); reset || len(evs) != 2 {
		t.Fatalf("legacy entry disturbed the feed: %v reset %v", evs, reset)
	}
	e.clock.Add(feedRetention + time.Hour)
	e.ok(logical.UpdateOperation, "tidy", nil)
	ids, _ := e.storage.List(t.Context(), revocationPrefix)
	// The newest event stays, whatever its age: its number must survive a
	// restart so numbers are never reused.
	if len(ids) != 1 || ids[0] != "00000000000000000002" {
		t.Fatalf("tidy kept %v; want only the newest event", ids)
	}
	evs, cur, reset := e.feed(cursor)
	if !reset || len(evs) != 0 || cur != feedEpochFallback+".2" {
		t.Fatalf("a cursor whose next events were tidied must reset to the head: %v %q %v", evs, cur, reset)
	}
	if evs, _, reset := e.feed(cur); reset || len(evs) != 0 {
		t.Fatalf("after a reset the head cursor reads on: %v %v", evs, reset)
	}
	for _, stale := range []string{
		"01795000000000000000-",      // legacy, time-keyed
		"0b1e2c3d.1",                 // another mount's
		feedEpochFallback + ".99999", // ahead of this feed (restored storage)
	} {
		if _, cur, reset := e.feed(stale); !reset || cur != feedEpochFallback+".2" {
			t.Fatalf("cursor %q: reset %v cursor %q", stale, reset, cur)
		}
	}
	e.badRequest(logical.ReadOperation, "revocations", map[string]any{"since": "../../config"}, "since", "cursor")
	e.badRequest(logical.ReadOperation, "revocations", map[string]any{"since": feedEpochFallback + ".-1"}, "since", "cursor")
}

// A blocking read (wait) with nothing newer than its cursor is held until
// an event is written, and answers with it at once; with nothing written
// it answers empty when the wait ends. A wait out of bounds is a 400.
func TestRevocations_blockingReadWakesOnAnEvent(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod"})
	k, _ := e.issue("r", nil)
	_, cursor, _ := e.feed("")

	type reply struct {
		events []map[string]any
		took   time.Duration
	}
	got := make(chan reply, 1)
	start := time.Now()
	go func() {
		resp, err := e.b.HandleRequest(t.Context(), &logical.Request{
			Operation: logical.ReadOperation, Path: "revocations", Storage: e.storage,
			Data: map[string]any{"since": cursor, "wait": "30s"},
		})
		if err != nil || resp.IsError() {
			t.Errorf("blocking read: %v %v", err, resp)
			got <- reply{}
			return
		}
		got <- reply{resp.Data["events"].([]map[string]any), time.Since(start)}
	}()
	time.Sleep(300 * time.Millisecond) // the read is waiting
	select {
	case r := <-got:
		t.Fatalf("answered before any event: %v", r.events)
	default:
	}
	e.ok(logical.DeleteOperation, "keys/"+k["key_id"].(string), nil)
	select {
	case r := <-got:
		if len(r.events) != 1 || r.events[0]["key_id"] != k["key_id"] || r.took > 5*time.Second {
			t.Fatalf("woken with %v after %s", r.events, r.took)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the blocking read was not woken by the revocation")
	}

	_, cursor, _ = e.feed("")
	start = time.Now()
	d := e.ok(logical.ReadOperation, "revocations", map[string]any{"since": cursor, "wait": "1s"}).Data
	if took := time.Since(start); len(d["events"].([]map[string]any)) != 0 || took < time.Second || took > 5*time.Second {
		t.Fatalf("an idle wait answered %v after %s", d["events"], took)
	}
	if d["wait_max"] != 60 {
		t.Fatalf("wait_max %v", d["wait_max"])
	}
	e.badRequest(logical.ReadOperation, "revocations", map[string]any{"since": cursor, "wait": "61s"}, "wait", "must be from 0 to")
}
