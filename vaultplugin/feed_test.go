package vaultplugin

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
	"github.com/hashicorp/vault/sdk/logical"
)

// faultyPuts makes Puts of keys under prefix fail, optionally after
// writing them (storage that commits and then answers an error), and counts
// Lists. fails < 0 fails every matching Put; otherwise the next fails ones.
type faultyPuts struct {
	logical.Storage
	mu     sync.Mutex
	prefix string
	fails  int
	commit bool
	lists  int
	// deletes under failDeletes fail (without deleting).
	failDeletes string
	// puts records every Put that reached storage, in order.
	puts []logical.StorageEntry
}

func (f *faultyPuts) failNext(prefix string, n int, commit bool) {
	f.mu.Lock()
	f.prefix, f.fails, f.commit = prefix, n, commit
	f.mu.Unlock()
}

func (f *faultyPuts) Put(ctx context.Context, e *logical.StorageEntry) error {
	f.mu.Lock()
	fail := f.fails != 0 && strings.HasPrefix(e.Key, f.prefix)
	if fail && f.fails > 0 {
		f.fails--
	}
	commit := f.commit
	f.mu.Unlock()
	if fail && !commit {
		return errInjected
	}
	if err := f.Storage.Put(ctx, e); err != nil {
		return err
	}
	f.mu.Lock()
	f.puts = append(f.puts, logical.StorageEntry{Key: e.Key, Value: bytes.Clone(e.Value)})
	f.mu.Unlock()
	if fail {
		return errInjected
	}
	return nil
}

func (f *faultyPuts) Delete(ctx context.Context, k string) error {
	f.mu.Lock()
	fail := f.failDeletes != "" && strings.HasPrefix(k, f.failDeletes)
	f.mu.Unlock()
	if fail {
		return errInjected
	}
	return f.Storage.Delete(ctx, k)
}

func (f *faultyPuts) List(ctx context.Context, prefix string) ([]string, error) {
	f.mu.Lock()
	f.lists++
	f.mu.Unlock()
	return f.Storage.List(ctx, prefix)
}

func (f *faultyPuts) listCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lists
}

// withFaults puts a faultyPuts under the test env's storage.
func (e *testEnv) withFaults() *faultyPuts {
	f := &faultyPuts{Storage: e.storage.Storage}
	e.storage.Storage = f
	return f
}

// try sends a request and returns what the handler returned, error included.
func (e *testEnv) try(op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
	return e.b.HandleRequest(context.Background(), &logical.Request{
		Operation: op, Path: path, Data: data, Storage: e.storage,
		DisplayName: "token-tester", EntityID: "entity-1234",
	})
}

func failed(resp *logical.Response, err error) bool {
	return err != nil || (resp != nil && resp.IsError())
}

// Finding 1: a revocation whose record write answers an error after
// committing must not leave this node's cache serving the live record.
func TestFeed_revocationThatCommitsThenFailsIsSeenOnThisNode(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod"})
	k, _ := e.issue("r", nil)
	e.wantCode(map[string]any{"api_key": k["api_key"]}, wire.CodeValid) // cached now
	f := e.withFaults()
	f.failNext(keyStoragePrefix, 1, true)
	if resp, err := e.try(logical.DeleteOperation, "keys/"+k["key_id"].(string), nil); !failed(resp, err) {
		t.Fatalf("the fault was not reported: %v", resp)
	}
	e.wantCode(map[string]any{"api_key": k["api_key"]}, wire.CodeRevoked)
}

// Finding 1: a retried revocation of a key storage already shows revoked
// writes the feed event the first attempt failed to write.
func TestFeed_retriedRevocationWritesTheMissingEvent(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod"})
	k, _ := e.issue("r", nil)
	_, cursor, _ := e.feed("")
	f := e.withFaults()
	f.failNext(revocationPrefix, -1, false)
	if resp, err := e.try(logical.DeleteOperation, "keys/"+k["key_id"].(string), nil); !failed(resp, err) {
		t.Fatalf("the fault was not reported: %v", resp)
	}
	e.wantCode(map[string]any{"api_key": k["api_key"]}, wire.CodeRevoked)
	if evs, _, _ := e.feed(cursor); len(evs) != 0 {
		t.Fatalf("an event that failed to write is in the feed: %v", evs)
	}
	f.failNext("", 0, false)
	e.ok(logical.DeleteOperation, "keys/"+k["key_id"].(string), nil)
	evs, _, reset := e.feed(cursor)
	if reset || len(evs) == 0 || evs[len(evs)-1]["key_id"] != k["key_id"] || evs[len(evs)-1]["kind"] != eventRevoked {
		t.Fatalf("the retried revocation left the feed without its event: %v", evs)
	}
}

// Finding 2: a suspension decided before a cursor was handed out but
// flushed after it is still delivered past that cursor.
func TestFeed_suspensionFlushedAfterACursorIsDelivered(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod", "on_anomaly": "suspend", "anomaly_rate": 0.1})
	k, _ := e.issue("r", nil)
	e.wantCode(map[string]any{"api_key": k["api_key"]}, wire.CodeValid)
	e.wantCode(map[string]any{"api_key": k["api_key"]}, wire.CodeSuspended)
	e.clock.Add(10 * time.Second)
	_, cursor, _ := e.feed("")
	if err := e.b.periodic(t.Context(), &logical.Request{Storage: e.storage}); err != nil {
		t.Fatal(err)
	}
	evs, _, reset := e.feed(cursor)
	if reset {
		t.Fatal("unexpected reset")
	}
	for _, ev := range evs {
		if ev["key_id"] == k["key_id"] && ev["kind"] == eventSuspended {
			return
		}
	}
	t.Fatalf("the suspension's event is not past the cursor handed out before the flush: %v", evs)
}

// A failed feed Put keeps its event pending at its number with its bytes;
// nothing reads it until it is written again, first, before the next event.
func TestFeed_failedPutStaysPendingAtItsSeqWithItsBytes(t *testing.T) {
	for _, commit := range []bool{false, true} {
		e := newTestEnv(t)
		f := e.withFaults()
		ctx := t.Context()
		f.failNext(revocationPrefix, 1, commit)
		if _, err := e.b.feed.append(ctx, e.storage, revocationEvent{KeyID: "aaaaaaaaaaaa", Kind: eventRevoked, At: e.clock.Now()}); err == nil {
			t.Fatal("the fault was not reported")
		}
		if head, _, _ := e.b.feed.bounds(ctx, e.storage); head != 0 {
			t.Fatalf("commit=%v: head advanced to %d on a failed Put", commit, head)
		}
		if evs, _, _ := e.feed(feedEpochFallback + ".0"); len(evs) != 0 {
			t.Fatalf("commit=%v: a failed event is readable: %v", commit, evs)
		}
		var first []byte
		if commit {
			first = bytes.Clone(f.puts[0].Value)
		}
		seq, err := e.b.feed.append(ctx, e.storage, revocationEvent{KeyID: "bbbbbbbbbbbb", Kind: eventRevoked, At: e.clock.Now()})
		if err != nil || seq != 2 {
			t.Fatalf("commit=%v: next event got seq %d, %v; want 2", commit, seq, err)
		}
		n := len(f.puts)
		if f.puts[n-2].Key != feedKey(1) || f.puts[n-1].Key != feedKey(2) {
			t.Fatalf("commit=%v: writes %s, %s; want the pending event 1 again, then 2", commit, f.puts[n-2].Key, f.puts[n-1].Key)
		}
		if commit && !bytes.Equal(first, f.puts[n-2].Value) {
			t.Fatalf("the pending event was rewritten with other bytes:\n%s\n%s", first, f.puts[n-2].Value)
		}
		evs, cur, _ := e.feed(feedEpochFallback + ".0")
		if len(evs) != 2 || evs[0]["key_id"] != "aaaaaaaaaaaa" || evs[1]["key_id"] != "bbbbbbbbbbbb" || cur != feedEpochFallback+".2" {
			t.Fatalf("commit=%v: feed %v cursor %s", commit, evs, cur)
		}
	}
}

// A pending event is written by periodic even when no later event comes.
func TestFeed_periodicWritesAPendingEvent(t *testing.T) {
	e := newTestEnv(t)
	f := e.withFaults()
	f.failNext(revocationPrefix, 1, false)
	if err := e.b.recordFlush(t.Context(), e.storage); err == nil {
		t.Fatal("the fault was not reported")
	}
	if err := e.b.periodic(t.Context(), &logical.Request{Storage: e.storage}); err != nil {
		t.Fatal(err)
	}
	evs, _, _ := e.feed(feedEpochFallback + ".0")
	if len(evs) != 1 || evs[0]["kind"] != eventFlush || evs[0]["key_id"] != "" || evs[0]["seq"] != uint64(1) {
		t.Fatalf("feed after periodic: %v", evs)
	}
}

// Reads cost one Get per event returned and no List; another node learns
// of new events from Invalidate.
func TestFeed_otherNodeReadsByInvalidateWithoutListing(t *testing.T) {
	active := newTestEnv(t)
	active.role("r", map[string]any{"environment": "prod"})
	k1, _ := active.issue("r", nil)
	k2, _ := active.issue("r", nil)
	active.ok(logical.DeleteOperation, "keys/"+k1["key_id"].(string), nil)

	// A second node over the same storage.
	shared := active.storage.Storage
	standby := newTestEnv(t)
	standby.storage.Storage = shared
	standby.b.storage = standby.storage
	f := standby.withFaults()
	evs, cursor, _ := standby.feed(feedEpochFallback + ".0")
	if len(evs) != 1 {
		t.Fatalf("standby's first read: %v", evs)
	}
	lists := f.listCount()

	active.ok(logical.DeleteOperation, "keys/"+k2["key_id"].(string), nil)
	if evs, _, _ := standby.feed(cursor); len(evs) != 0 {
		t.Fatalf("standby saw an event it was not told of: %v", evs)
	}
	standby.b.invalidate(t.Context(), feedKey(2))
	_, getsBefore, _ := standby.storage.counts()
	evs, cursor, _ = standby.feed(cursor)
	_, getsAfter, _ := standby.storage.counts()
	if len(evs) != 1 || evs[0]["key_id"] != k2["key_id"] || cursor != feedEpochFallback+".2" {
		t.Fatalf("after Invalidate: %v %s", evs, cursor)
	}
	if getsAfter-getsBefore != 1 || f.listCount() != lists {
		t.Fatalf("a read of one event cost %d Gets and %d Lists; want 1 and 0", getsAfter-getsBefore, f.listCount()-lists)
	}
	// A cursor from the active node ahead of what this node heard of is
	// checked against storage, not answered with a reset.
	active.ok(logical.DeleteOperation, "keys/"+k2["key_id"].(string), nil) // event 3
	if _, cur, reset := standby.feed(feedEpochFallback + ".3"); reset || cur != feedEpochFallback+".3" {
		t.Fatalf("a cursor of the active node: reset %v cursor %s", reset, cur)
	}
}

func TestFeed_epochComesFromTheBackendUUID(t *testing.T) {
	conf := logical.TestBackendConfig()
	conf.BackendUUID = "7f0c2a8e-7b5e-4b73-9d0f-6f4c1b2a3e44"
	conf.StorageView = &logical.InmemStorage{}
	b, err := newMountedBackend(t.Context(), conf, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	read := func(since string) map[string]any {
		resp, err := b.HandleRequest(t.Context(), &logical.Request{Operation: logical.ReadOperation, Path: "revocations", Data: map[string]any{"since": since}, Storage: conf.StorageView})
		if err != nil || resp.IsError() {
			t.Fatalf("%v %v", resp, err)
		}
		return resp.Data
	}
	want := feedEpoch(conf.BackendUUID) + ".0"
	if got := read("")["cursor"]; got != want || want == feedEpochFallback+".0" {
		t.Fatalf("cursor %v, want %s", got, want)
	}
	if d := read(feedEpochFallback + ".0"); d["reset"] != true || d["cursor"] != want {
		t.Fatalf("another epoch's cursor: %v", d)
	}
	if d := read(want); d["reset"] != false {
		t.Fatalf("own cursor: %v", d)
	}
}

// A failed suspension event after the record write is written on the next
// flush, and the usage counted with it is stored once, not twice.
func TestFeed_suspensionEventFailureHealsWithoutDoublingUsage(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod", "on_anomaly": "suspend", "anomaly_rate": 0.1})
	k, _ := e.issue("r", nil)
	id := k["key_id"].(string)
	e.wantCode(map[string]any{"api_key": k["api_key"]}, wire.CodeValid)
	e.wantCode(map[string]any{"api_key": k["api_key"]}, wire.CodeSuspended)
	f := e.withFaults()
	f.failNext(revocationPrefix, 1, false)
	if err := e.b.flushUsage(t.Context(), e.storage, 0); err == nil {
		t.Fatal("the fault was not reported")
	}
	// Still announced from memory until its event is written.
	if evs, _, _ := e.feed(feedEpochFallback + ".0"); len(evs) != 1 || evs[0]["seq"] != uint64(0) {
		t.Fatalf("feed while the event is pending: %v", evs)
	}
	if err := e.b.flushUsage(t.Context(), e.storage, 0); err != nil {
		t.Fatal(err)
	}
	rec, _ := e.b.loadKey(t.Context(), e.storage, id)
	if rec.UseCount != 1 || rec.SuspendedAt.IsZero() {
		t.Fatalf("use_count %d suspended_at %v; want 1 and set", rec.UseCount, rec.SuspendedAt)
	}
	evs, _, _ := e.feed(feedEpochFallback + ".0")
	n := 0
	for _, ev := range evs {
		if ev["key_id"] == id && ev["kind"] == eventSuspended && ev["seq"] != uint64(0) {
			n++
		}
	}
	if n == 0 {
		t.Fatalf("no numbered suspension event: %v", evs)
	}
}
