package vaultplugin

import (
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

func TestUsageTracker_recordTakePutBack(t *testing.T) {
	u := newUsageTracker()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	u.record("k", t0, "10.0.0.1")
	u.record("k", t0.Add(time.Second), "10.0.0.2")
	u.record("k", t0.Add(2*time.Second), "10.0.0.1")
	p := u.pending("k")
	if p.count != 3 || !p.last.Equal(t0.Add(2*time.Second)) || p.sourceIP != "10.0.0.1" || !p.since.Equal(t0) || len(p.ips) != 2 {
		t.Fatalf("pending: %+v", p)
	}
	taken := u.take()
	if len(taken) != 1 || u.pending("k").count != 0 {
		t.Fatalf("take: %v, left %+v", taken, u.pending("k"))
	}
	// A failed flush puts its counts back, merged with what came since.
	u.record("k", t0.Add(3*time.Second), "10.0.0.3")
	u.putBack("k", taken["k"])
	p = u.pending("k")
	if p.count != 4 || !p.since.Equal(t0) || p.sourceIP != "10.0.0.3" || len(p.ips) != 3 {
		t.Fatalf("after putBack: %+v", p)
	}
}

// Reports (add) are bounded: a key not yet pending is refused once max keys
// are, so reports cannot grow the engine's memory without bound.
func TestUsageTracker_addIsBounded(t *testing.T) {
	u := newUsageTracker()
	u.max = 2
	now := time.Now()
	for i := range 2 {
		if !u.add(fmt.Sprintf("k%d", i), 5, now, "", now) {
			t.Fatalf("report %d refused below the bound", i)
		}
	}
	if u.add("k9", 1, now, "", now) {
		t.Fatal("a third key was accepted with max 2")
	}
	if !u.add("k0", 1, now, "10.0.0.1", now) || u.pending("k0").count != 6 {
		t.Fatalf("a pending key's report must merge: %+v", u.pending("k0"))
	}
}

// flushUsage writes the counts into the records (last_used_at, use_count),
// at most limit keys of usage alone per run, oldest first, and keeps the
// rest pending.
func TestFlushUsage_writesRecordsOldestFirst(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod"})
	var ids []string
	for range 3 {
		d, _ := e.issue("r", nil)
		ids = append(ids, d["key_id"].(string))
	}
	t0 := e.clock.Now()
	for i, id := range ids {
		e.b.usage.record(id, t0.Add(time.Duration(len(ids)-i)*time.Second), "") // ids[2] waited longest
	}
	if err := e.b.flushUsage(t.Context(), e.storage, 1); err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		rec, err := e.b.loadKey(t.Context(), e.storage, id)
		if err != nil {
			t.Fatal(err)
		}
		flushed := rec.UseCount == 1
		if flushed != (i == 2) {
			t.Errorf("key %d: use_count %d in storage; want only the oldest flushed with limit 1", i, rec.UseCount)
		}
	}
	if e.b.usage.pending(ids[0]).count != 1 {
		t.Error("an unflushed key's count was lost")
	}
	// Reads on this node include what is still pending.
	if c := e.ok(logical.ReadOperation, "keys/"+ids[0], nil).Data["use_count"]; fmt.Sprint(c) != "1" {
		t.Errorf("use_count read %v, want the pending 1", c)
	}
	if err := e.b.flushUsage(t.Context(), e.storage, 0); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if rec, _ := e.b.loadKey(t.Context(), e.storage, id); rec.UseCount != 1 {
			t.Errorf("%s: use_count %d after a full flush", id, rec.UseCount)
		}
	}
}
