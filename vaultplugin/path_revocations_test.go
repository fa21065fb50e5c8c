package vaultplugin

import (
	"testing"
	"time"

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
	e.wantCode(map[string]any{"api_key": c["api_key"]}, codeValid)
	e.wantCode(map[string]any{"api_key": c["api_key"]}, codeSuspended)
	// Before the flush the suspension is already in the feed, from memory.
	if early, _, _ := e.feed(cursor); len(early) != 3 {
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
	for _, ev := range events {
		got[ev["key_id"].(string)] = ev["kind"].(string)
	}
	if got[a["key_id"].(string)] != eventRevoked || got[b["key_id"].(string)] != eventRotated || got[c["key_id"].(string)] != eventSuspended {
		t.Fatalf("kinds: %v", got)
	}
	// Inside the settle window the cursor holds back, so events repeat
	// rather than risk being skipped; past it they do not.
	if again, _, _ := e.feed(next); len(again) != 3 {
		t.Fatalf("events within the settle window must be resent, got %d", len(again))
	}
	e.clock.Add(feedSettle + time.Second)
	_, next, _ = e.feed(next)
	if again, _, _ := e.feed(next); len(again) != 0 {
		t.Fatalf("settled events resent: %v", again)
	}
	// A second revocation of the same key is not news.
	e.ok(logical.DeleteOperation, "keys/"+a["key_id"].(string), nil)
	if again, _, _ := e.feed(next); len(again) != 0 {
		t.Fatalf("idempotent revoke produced an event: %v", again)
	}
}

func TestRevocations_staleCursorResetsAndTidyPrunes(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod", "ttl": "47h", "max_ttl": "47h"})
	_, cursor, _ := e.feed("")
	a, _ := e.issue("r", nil)
	e.ok(logical.DeleteOperation, "keys/"+a["key_id"].(string), nil)
	e.clock.Add(feedRetention + time.Hour)
	if _, _, reset := e.feed(cursor); !reset {
		t.Fatal("a cursor older than the feed keeps must ask for a reset")
	}
	e.ok(logical.UpdateOperation, "tidy", nil)
	ids, _ := e.storage.List(t.Context(), revocationPrefix)
	if len(ids) != 0 {
		t.Fatalf("tidy kept %d old feed events", len(ids))
	}
	e.badRequest(logical.ReadOperation, "revocations", map[string]any{"since": "../../config"}, "since", "cursor")
}
