package vaultplugin

import (
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
	"github.com/hashicorp/vault/sdk/logical"
)

func TestAnomaly_rateFlagOnlyFlags(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod", "on_anomaly": "flag", "anomaly_rate": 1})
	d, _ := e.issue("r", nil)
	req := map[string]any{"api_key": d["api_key"]}
	for range 10 { // 10 in 10 s is exactly the threshold
		e.wantCode(req, wire.CodeValid)
	}
	e.wantCode(req, wire.CodeValid) // the 11th is anomalous but only flagged
	id := d["key_id"].(string)
	rec := e.ok(logical.ReadOperation, "keys/"+id, nil).Data
	as := rec["anomalies"].([]map[string]any)
	if len(as) != 1 || as[0]["kind"] != "rate" || as[0]["count"] != uint64(1) || rec["suspended"] != false {
		t.Fatalf("anomalies: %v suspended=%v", as, rec["suspended"])
	}
	// A new window starts clean.
	e.clock.Add(anomalyWindow)
	e.wantCode(req, wire.CodeValid)
	list := e.ok(logical.ReadOperation, "monitor/anomalies", nil).Data
	if asJSON(list["keys"]) != asJSON([]string{id}) {
		t.Fatalf("monitor/anomalies: %v", list)
	}
}

func TestAnomaly_suspendThenResume(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod", "on_anomaly": "suspend", "flag_new_source": true})
	d, _ := e.issue("r", nil)
	id := d["key_id"].(string)
	from := func(ip string) map[string]any { return map[string]any{"api_key": d["api_key"], "source_ip": ip} }
	e.wantCode(from("10.0.0.1"), wire.CodeValid) // baseline
	e.wantCode(from("10.0.0.1"), wire.CodeValid)
	e.wantCode(from("198.51.100.7"), wire.CodeSuspended) // never seen before
	e.wantCode(from("10.0.0.1"), wire.CodeSuspended)     // suspended for every source now
	if st := e.ok(logical.ReadOperation, "keys/"+id, nil).Data["status"]; st != statusSuspended {
		t.Fatalf("status %v", st)
	}

	// The suspension survives a flush (it is stored, so other nodes and
	// restarts see it), and resume lifts it.
	if err := e.b.periodic(t.Context(), &logical.Request{Storage: e.storage}); err != nil {
		t.Fatal(err)
	}
	stored, _ := e.b.loadKey(t.Context(), e.storage, id)
	if stored.SuspendedAt.IsZero() || len(stored.Anomalies) != 1 || len(stored.SourceIPs) != 2 {
		t.Fatalf("suspension not flushed: %+v", stored)
	}
	e.b.cache.drop(id) // as another node would, reading storage
	e.wantCode(from("10.0.0.1"), wire.CodeSuspended)

	resp := e.ok(logical.UpdateOperation, "keys/"+id+"/resume", map[string]any{"reason": "customer confirmed"})
	if resp.Data["suspended"] != false || resp.Data["resumed_by"] == "" {
		t.Fatalf("resume: %v", resp.Data)
	}
	e.wantCode(from("10.0.0.1"), wire.CodeValid)
	e.wantCode(from("198.51.100.7"), wire.CodeValid) // now a known source
	if as := e.ok(logical.ReadOperation, "keys/"+id, nil).Data["anomalies"].([]map[string]any); len(as) != 1 {
		t.Fatalf("history lost on resume: %v", as)
	}
}

func TestAnomaly_noneIgnoresEverything(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod", "anomaly_rate": 0.1, "flag_new_source": true})
	d, _ := e.issue("r", nil)
	for i := range 20 {
		e.wantCode(map[string]any{"api_key": d["api_key"], "source_ip": "10.0.0." + string(rune('0'+i%10))}, wire.CodeValid)
	}
	if list := e.ok(logical.ReadOperation, "monitor/anomalies", nil).Data["keys"].([]string); len(list) != 0 {
		t.Fatalf("on_anomaly=none flagged %v", list)
	}
	e.badRequest(logical.UpdateOperation, "roles/r", map[string]any{"on_anomaly": "panic"}, "on_anomaly", "must be one of")
	_ = time.Second
}

// TestAnomaly_resumeRacingAFlushStaysResumed: the flush takes a pending
// suspension, a resume lands before the flush writes the record, and the
// flush then writes. The key stays resumed: in storage, on this node, and
// when the flush's write fails and its findings are queued again (issue 22
// item 8).
func TestAnomaly_resumeRacingAFlushStaysResumed(t *testing.T) {
	for _, failing := range []bool{false, true} {
		e := newTestEnv(t)
		e.role("r", map[string]any{"environment": "prod", "on_anomaly": "suspend", "flag_new_source": true})
		d, _ := e.issue("r", nil)
		id := d["key_id"].(string)
		from := func(ip string) map[string]any { return map[string]any{"api_key": d["api_key"], "source_ip": ip} }
		e.wantCode(from("10.0.0.1"), wire.CodeValid)
		e.wantCode(from("198.51.100.7"), wire.CodeSuspended)
		e.clock.Add(time.Second)

		// flushUsage, cut between its take and flushOne, with the resume
		// in between.
		used := e.b.usage.take()
		found := e.b.anomalies.take()
		if found[id] == nil || found[id].suspendedAt.IsZero() {
			t.Fatalf("no pending suspension taken: %v", found)
		}
		e.ok(logical.UpdateOperation, "keys/"+id+"/resume", map[string]any{"reason": "customer confirmed"})
		if failing {
			// The flush's write fails: it gives its findings back.
			e.b.usage.putBack(id, used[id])
			e.b.anomalies.putBack(id, found[id])
		} else {
			if _, err := e.b.flushOne(t.Context(), e.storage, id, used[id], found[id]); err != nil {
				t.Fatal(err)
			}
			e.b.anomalies.settled(id, found[id].suspendedAt)
		}
		if failing {
			// A usage report's check sees the resume too.
			rec, _ := e.b.loadKey(t.Context(), e.storage, id)
			if e.b.anomalies.observeReport(rec, e.clock.Now(), 1, time.Time{}, "10.0.0.1", e.b.logAnomaly) {
				t.Fatal("a usage report after the resume finds the key suspended")
			}
		}
		e.wantCode(from("10.0.0.1"), wire.CodeValid)
		if err := e.b.periodic(t.Context(), &logical.Request{Storage: e.storage}); err != nil {
			t.Fatal(err)
		}
		e.b.cache.drop(id)
		stored, _ := e.b.loadKey(t.Context(), e.storage, id)
		if !stored.SuspendedAt.IsZero() {
			t.Fatalf("failing=%v: the flush brought the suspension back: suspended_at %s, resumed_at %s", failing, stored.SuspendedAt, stored.notes().ResumedAt)
		}
		e.wantCode(from("10.0.0.1"), wire.CodeValid)
		if st := e.ok(logical.ReadOperation, "keys/"+id, nil).Data["status"]; st == statusSuspended {
			t.Fatalf("failing=%v: status %v after resume", failing, st)
		}
	}
}
