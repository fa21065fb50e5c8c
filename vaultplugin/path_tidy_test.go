package vaultplugin

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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
	got, err := e.b.tidy(context.Background(), e.storage)
	if err != nil || got.scanned != n || got.removed != n {
		t.Fatalf("tidy scanned %d removed %d (%v), want %d", got.scanned, got.removed, err, n)
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

// putOrphan writes a key index entry with no record, as an issue stopped
// between its two writes, or a removal between its two deletes, leaves one.
func (e *testEnv) putOrphan(role, env, keyID string) string {
	e.t.Helper()
	entry := indexEntry(role, env, keyID)
	if err := e.storage.Put(context.Background(), &logical.StorageEntry{Key: entry, Value: []byte{}}); err != nil {
		e.t.Fatal(err)
	}
	return entry
}

// tidyOK runs tidy and checks how many index entries it swept.
func (e *testEnv) tidyOK(wantSwept int) {
	e.t.Helper()
	if got := e.ok(logical.UpdateOperation, "tidy", nil).Data; got["index_entries_removed"] != wantSwept {
		e.t.Fatalf("tidy swept %v index entries, want %d: %v", got["index_entries_removed"], wantSwept, got)
	}
}

func (e *testEnv) stored(key string) bool {
	e.t.Helper()
	_, ok := e.dump()[key]
	return ok
}

func TestTidy_sweepsOrphanIndexEntries(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod", "ttl": "48h", "max_ttl": "48h"})
	live, _ := e.issue("r", nil)
	liveID := live["key_id"].(string)
	orphans := []string{
		e.putOrphan("r", "prod", "orphan000001"),
		e.putOrphan("gone", "dev", "orphan000002"), // a role deleted since
	}
	e.tidyOK(0) // first found: suspects only
	e.clock.Add(orphanGrace - time.Minute)
	e.tidyOK(0)
	for _, o := range orphans {
		if !e.stored(o) {
			t.Fatalf("tidy swept %s before the grace", o)
		}
	}
	e.clock.Add(time.Minute)
	e.tidyOK(2)
	for _, o := range orphans {
		if e.stored(o) {
			t.Fatalf("tidy left %s behind past the grace", o)
		}
	}
	if !e.stored(indexEntry("r", "prod", liveID)) || !e.stored(keyStoragePrefix+liveID) {
		t.Fatal("tidy removed the live key's index entry or record")
	}
	if n := len(e.b.suspects); n != 0 {
		t.Fatalf("tidy still remembers %d suspects", n)
	}
	e.clock.Add(orphanGrace)
	e.tidyOK(0)
	if got := e.ok(logical.UpdateOperation, "revoke/role/r", nil).Data; got["revoked"] != 1 {
		t.Fatalf("revoke/role after the sweep: %v", got)
	}
	e.wantCode(map[string]any{"api_key": live["api_key"]}, wire.CodeRevoked)
}

// An anomaly index entry whose record is gone (a tidy stopped between the
// two) is swept by the next tidy, with no grace; one whose key still has its
// record stays, and monitor/anomalies still lists that key.
func TestTidy_sweepsOrphanAnomalyEntries(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod", "ttl": "48h", "max_ttl": "48h"})
	live, _ := e.issue("r", nil)
	liveID := live["key_id"].(string)
	kept, orphan := anomalyIndexPrefix+liveID, anomalyIndexPrefix+"orphan000003"
	for _, k := range []string{kept, orphan} {
		if err := e.storage.Put(context.Background(), &logical.StorageEntry{Key: k, Value: []byte{}}); err != nil {
			t.Fatal(err)
		}
	}
	e.tidyOK(1)
	if e.stored(orphan) {
		t.Fatal("tidy left the orphaned anomaly entry behind")
	}
	if !e.stored(kept) {
		t.Fatal("tidy removed the anomaly entry of a key that has its record")
	}
	if got := e.ok(logical.ReadOperation, "monitor/anomalies", nil).Data["keys"]; !slices.Equal(got.([]string), []string{liveID}) {
		t.Fatalf("monitor/anomalies after the sweep: %v", got)
	}
	e.tidyOK(0)
}

// The sweep's listing of records is older than its listing of anomaly
// entries: a key issued and flagged in between (its usage flushed, which
// writes its anomaly entry) has an entry but is missing from the listing.
// Its entry must stay, or monitor/anomalies would lose a flagged key.
func TestTidy_keepsTheAnomalyEntryOfAKeyFlaggedWhileItRuns(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod", "on_anomaly": "flag", "anomaly_rate": 1})
	h := e.pauseAt("list", keyStoragePrefix)
	tidy := e.inBackground(h, &logical.Request{Operation: logical.UpdateOperation, Path: "tidy"})

	d, _ := e.issue("r", nil)
	id := d["key_id"].(string)
	for range 11 { // the 11th in 10 s is above anomaly_rate: flagged
		e.wantCode(map[string]any{"api_key": d["api_key"]}, wire.CodeValid)
	}
	if err := e.b.flushUsage(t.Context(), e.storage, 0); err != nil {
		t.Fatal(err)
	}
	if !e.stored(anomalyIndexPrefix + id) {
		t.Fatal("the flush wrote no anomaly entry: the test sets up nothing")
	}
	h.release()
	if got := tidy.wait(t).Data["index_entries_removed"]; got != 0 {
		t.Fatalf("tidy removed %v index entries", got)
	}
	if !e.stored(anomalyIndexPrefix + id) {
		t.Fatal("tidy swept the anomaly entry of a key flagged while it ran")
	}
	if got := e.ok(logical.ReadOperation, "monitor/anomalies", nil).Data["keys"]; !slices.Equal(got.([]string), []string{id}) {
		t.Fatalf("monitor/anomalies after tidy: %v", got)
	}
}

// holdRecordPut holds the first key record write until released: an issue
// in flight, its index entry written and its record not yet.
type holdRecordPut struct {
	logical.Storage
	fired       atomic.Bool
	reached     chan struct{}
	releaseCh   chan struct{}
	releaseOnce sync.Once
}

func (e *testEnv) holdRecordPut() *holdRecordPut {
	h := &holdRecordPut{Storage: e.storage.Storage, reached: make(chan struct{}), releaseCh: make(chan struct{})}
	e.storage.Storage = h
	e.t.Cleanup(h.release)
	return h
}

func (h *holdRecordPut) release() { h.releaseOnce.Do(func() { close(h.releaseCh) }) }

func (h *holdRecordPut) Put(ctx context.Context, ent *logical.StorageEntry) error {
	if strings.HasPrefix(ent.Key, keyStoragePrefix) && h.fired.CompareAndSwap(false, true) {
		close(h.reached)
		<-h.releaseCh
	}
	return h.Storage.Put(ctx, ent)
}

// issueInFlight starts an issue of role and returns once its index entry is
// written and its record is not.
func (e *testEnv) issueInFlight(role string) (*holdRecordPut, *pending) {
	e.t.Helper()
	h := e.holdRecordPut()
	p := e.start(&logical.Request{Operation: logical.ReadOperation, Path: "creds/" + role})
	select {
	case <-h.reached:
	case <-p.done:
		e.t.Fatalf("the issue finished without writing a record: %v %v", p.resp, p.err)
	case <-time.After(waitTimeout(e.t)):
		e.t.Fatal("the issue never reached its record write")
	}
	return h, p
}

// tidyDuring runs tidy while the issue is held (tidy may wait for it), then
// lets the issue finish; it returns tidy's reply and the issued key.
func (e *testEnv) tidyDuring(h *holdRecordPut, issue *pending) (tidy, key map[string]any) {
	e.t.Helper()
	r := e.start(&logical.Request{Operation: logical.UpdateOperation, Path: "tidy"})
	select {
	case <-r.done:
	case <-time.After(100 * time.Millisecond): // long enough to delete
	}
	h.release()
	return r.wait(e.t).Data, issue.wait(e.t).Data
}

// An issue writes its index entry before its record: tidy must never sweep
// the entry of an issue in flight, or the key, once its record lands, would
// escape bulk revocation and max_active_keys.
func TestTidy_neverSweepsAnIssueInFlight(t *testing.T) {
	check := func(t *testing.T, e *testEnv, tidy, key map[string]any, capped bool) {
		t.Helper()
		if tidy["index_entries_removed"] != 0 {
			t.Fatalf("tidy swept the entry of an issue in flight: %v", tidy)
		}
		e.clock.Add(2 * orphanGrace)
		e.tidyOK(0)
		e.tidyOK(0)
		if !e.stored(indexEntry("r", "prod", key["key_id"].(string))) {
			t.Fatal("tidy swept the index entry of a key issued while it ran")
		}
		if n := len(e.b.suspects); n != 0 {
			t.Fatalf("tidy still remembers %d suspects once the record landed", n)
		}
		if capped {
			e.badRequest(logical.ReadOperation, "creds/r", nil, "max_active_keys", "already has 1 live keys")
		}
		if got := e.ok(logical.UpdateOperation, "revoke/role/r", nil).Data; got["revoked"] != 1 {
			t.Fatalf("revoke/role: %v", got)
		}
		e.wantCode(map[string]any{"api_key": key["api_key"]}, wire.CodeRevoked)
	}
	// Tidy finds the entry without its record, which lands after.
	t.Run("record lands", func(t *testing.T) {
		e := newTestEnv(t)
		e.role("r", map[string]any{"environment": "prod", "ttl": "48h", "max_ttl": "48h", "max_active_keys": 1})
		h, issue := e.issueInFlight("r")
		tidy, key := e.tidyDuring(h, issue)
		check(t, e, tidy, key, true)
	})
	// The issue is still between its writes past the grace (a storage
	// write that hangs): tidy waits for the role's lock, which the issue
	// holds (shared, the role having no cap), then finds the record.
	t.Run("issue outlasts the grace", func(t *testing.T) {
		e := newTestEnv(t)
		e.role("r", map[string]any{"environment": "prod", "ttl": "48h", "max_ttl": "48h"})
		h, issue := e.issueInFlight("r")
		first := e.start(&logical.Request{Operation: logical.UpdateOperation, Path: "tidy"})
		if got := first.wait(t).Data; got["index_entries_removed"] != 0 {
			t.Fatalf("tidy swept the entry of an issue in flight: %v", got)
		}
		e.clock.Add(orphanGrace)
		tidy, key := e.tidyDuring(h, issue)
		check(t, e, tidy, key, false)
	})
}

// A sweep whose delete fails stops with the error and keeps the suspect:
// the next tidy deletes it without another grace.
func TestTidy_failedSweepIsRetried(t *testing.T) {
	e := newTestEnv(t)
	orphan := e.putOrphan("r", "prod", "orphan000001")
	e.tidyOK(0)
	e.clock.Add(orphanGrace)
	f := e.withFaults()
	f.failDeletes = keyIndexPrefix
	if resp, err := e.try(logical.UpdateOperation, "tidy", nil); !failed(resp, err) {
		t.Fatalf("tidy with a failing delete: %v", resp)
	}
	if !e.stored(orphan) {
		t.Fatal("the entry went though its delete failed")
	}
	f.mu.Lock()
	f.failDeletes = ""
	f.mu.Unlock()
	e.tidyOK(1)
	if e.stored(orphan) {
		t.Fatal("the retried sweep left the entry")
	}
}
