package vaultplugin

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
	"github.com/hashicorp/vault/sdk/logical"
)

func TestTidy_dropsOnlyRecordsPastRetention(t *testing.T) {
	e := newTestEnv(t)
	e.ok(logical.UpdateOperation, "config", map[string]any{"retention": "24h"})
	e.role("r", map[string]any{"environment": "prod", "ttl": "1h", "max_ttl": "2h"})
	e.role("long", map[string]any{"environment": "prod", "ttl": "40h", "max_ttl": "40h"})
	revoked, _ := e.issue("r", nil)
	expired, _ := e.issue("r", nil)
	live, _ := e.issue("long", nil)
	e.ok(logical.DeleteOperation, "keys/"+revoked["key_id"].(string), nil)

	// Both could have lived until max_expires_at (2h): kept until 26h.
	e.clock.Add(25 * time.Hour)
	if got := e.ok(logical.UpdateOperation, "tidy", nil).Data; got["removed"] != 0 || got["scanned"] != 3 {
		t.Fatalf("tidy inside retention: %v", got)
	}
	e.clock.Add(90 * time.Minute)
	if got := e.ok(logical.UpdateOperation, "tidy", nil).Data; got["removed"] != 2 {
		t.Fatalf("tidy: %v", got)
	}
	for k := range e.dump() {
		for _, gone := range []any{revoked["key_id"], expired["key_id"]} {
			if strings.HasSuffix(k, gone.(string)) {
				t.Fatalf("tidy left %q behind", k)
			}
		}
	}
	e.wantCode(map[string]any{"api_key": live["api_key"]}, wire.CodeValid)
	e.wantCode(map[string]any{"api_key": revoked["api_key"]}, wire.CodeNotFound)
	// Revoking a tidied key's lease is still a success.
	if resp := e.leaseOp(logical.RevokeOperation, &logical.Secret{InternalData: map[string]any{"key_id": revoked["key_id"], "secret_type": secretAPIKeyType}}); resp != nil && resp.IsError() {
		t.Fatal(resp.Error())
	}
}

// Issue 22 item 7: retention cannot erase evidence. A retention below the
// minimum is refused, and a key revoked a second ago whose lease (holding the
// api_key) has an hour left keeps its record, and its REVOKED answer, for at
// least its latest possible end plus the minimum.
func TestTidy_retentionCannotEraseEvidence(t *testing.T) {
	e := newTestEnv(t)
	for _, r := range []string{"0", "1s", "23h59m"} {
		e.badRequest(logical.UpdateOperation, "config", map[string]any{"retention": r}, "retention", "at least 24h")
	}
	e.ok(logical.UpdateOperation, "config", map[string]any{"retention": "24h"})
	e.role("r", map[string]any{"environment": "prod", "ttl": "1h", "max_ttl": "1h"})
	k, _ := e.issue("r", nil)
	e.ok(logical.DeleteOperation, "keys/"+k["key_id"].(string), map[string]any{"reason": "evidence"})
	// A retention an earlier build stored below the minimum is raised to it.
	cfg, err := e.b.getConfig(context.Background(), e.storage)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Retention = 0
	for _, after := range []time.Duration{time.Second, time.Hour, 23 * time.Hour} {
		e.clock.Add(after)
		e.ok(logical.UpdateOperation, "tidy", nil)
		e.wantCode(map[string]any{"api_key": k["api_key"]}, wire.CodeRevoked)
		if rec := e.ok(logical.ReadOperation, "keys/"+k["key_id"].(string), nil).Data; rec["revoke_reason"] != "evidence" {
			t.Fatalf("record after %s: %v", after, rec)
		}
	}
	e.clock.Add(2 * time.Hour) // past max_expires_at (1h) + 24h
	if got := e.ok(logical.UpdateOperation, "tidy", nil).Data; got["removed"] != 1 {
		t.Fatalf("tidy past the retention: %v", got)
	}
}

func TestTidy_pagesThroughManyRecords(t *testing.T) {
	e := newTestEnv(t)
	e.ok(logical.UpdateOperation, "config", map[string]any{"retention": "24h"})
	e.role("r", map[string]any{"environment": "prod", "ttl": "1m", "max_ttl": "1m"})
	n := tidyPage*2 + 17
	for range n {
		e.issue("r", nil)
	}
	e.clock.Add(25 * time.Hour)
	scanned, removed, err := e.b.tidy(context.Background(), e.storage)
	if err != nil || scanned != n || removed != n {
		t.Fatalf("tidy scanned %d removed %d (%v), want %d", scanned, removed, err, n)
	}
	if left := e.dump(); len(left) != 2 { // config and the role
		t.Fatalf("%d entries left: %v", len(left), sortedKeys(left)[:3])
	}
}

func TestTidy_periodicRunsHourly(t *testing.T) {
	e := newTestEnv(t)
	e.ok(logical.UpdateOperation, "config", map[string]any{"retention": "24h"})
	e.role("r", map[string]any{"environment": "prod", "ttl": "1m", "max_ttl": "1m"})
	e.issue("r", nil)
	run := func() { _ = e.b.periodic(context.Background(), &logical.Request{Storage: e.storage}) }
	run() // first run tidies (nothing old yet) and sets the clock
	e.clock.Add(5 * time.Minute)
	run()
	if n := len(e.ok(logical.ListOperation, "keys/", nil).Data["keys"].([]string)); n != 1 {
		t.Fatal("periodic tidied before the interval")
	}
	e.clock.Add(24 * time.Hour)
	run()
	if resp := e.ok(logical.ListOperation, "keys/", nil); resp.Data["keys"] != nil && len(resp.Data["keys"].([]string)) != 0 {
		t.Fatalf("periodic did not tidy: %v", resp.Data["keys"])
	}
}

// TestTidy_lastRunSurvivesARestart: periodic keeps the time of its last
// tidy in storage, so a plugin that restarts (a reload, an upgrade, a crash
// loop) does not rescan every record on its first periodic run (issue 22
// item 8).
func TestTidy_lastRunSurvivesARestart(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod"})
	e.issue("r", nil)
	run := func() {
		t.Helper()
		if err := e.b.periodic(context.Background(), &logical.Request{Storage: e.storage}); err != nil {
			t.Fatal(err)
		}
	}
	keyLists := func() int {
		e.storage.mu.Lock()
		defer e.storage.mu.Unlock()
		return e.storage.lists
	}
	run() // the first run ever tidies
	if keyLists() != 1 {
		t.Fatalf("the first periodic run listed keys/ %d times, want 1", keyLists())
	}
	restart := func() {
		t.Helper()
		conf := logical.TestBackendConfig()
		conf.StorageView = e.storage
		next, err := newMountedBackend(context.Background(), conf, e.clock.Now)
		if err != nil {
			t.Fatal(err)
		}
		e.b = next
	}
	e.clock.Add(10 * time.Minute)
	restart()
	run()
	if keyLists() != 1 {
		t.Fatalf("a restarted plugin rescanned every record %s after the last tidy", 10*time.Minute)
	}
	e.clock.Add(tidyInterval)
	restart()
	run()
	if keyLists() != 2 {
		t.Fatalf("a restarted plugin did not tidy once the interval had passed (%d scans)", keyLists())
	}
	// A stored time far ahead of the clock (the clock was stepped back) does
	// not hold tidy off for longer than the interval.
	if err := e.storage.Put(context.Background(), &logical.StorageEntry{Key: tidyLastPath, Value: []byte(`{"at":"2100-01-01T00:00:00Z"}`)}); err != nil {
		t.Fatal(err)
	}
	restart()
	run()
	if keyLists() != 3 {
		t.Fatalf("a last-tidy time in the future held tidy off (%d scans)", keyLists())
	}
}
