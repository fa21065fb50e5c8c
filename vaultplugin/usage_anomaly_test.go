package vaultplugin

import (
	"context"
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
	"github.com/hashicorp/vault/sdk/logical"
)

// Issue 17 item 7: usage reports (traffic local verifiers answered from
// their caches) reach anomaly detection. A reported source address new for
// a flag_new_source key suspends it (on_anomaly=suspend) at once: verify
// refuses it and the feed carries it; the flush writes it.
func TestUsage_reportedNewSourceSuspends(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod", "on_anomaly": "suspend", "flag_new_source": true})
	d, _ := e.issue("r", nil)
	id := d["key_id"].(string)
	got := e.wantCode(map[string]any{"api_key": d["api_key"], "source_ip": "192.0.2.10"}, wire.CodeValid) // the baseline
	tk := got["usage_ticket"].(string)
	now := func() string { return e.clock.Now().Format(time.RFC3339) }
	entry := func(ip string, n int) map[string]any {
		return map[string]any{"key_id": id, "count": n, "last_used_at": now(), "source_ip": ip, "ticket": tk}
	}
	if acc, _, _ := e.report(entry("192.0.2.10", 30)); acc != 1 {
		t.Fatal("report refused")
	}
	if s := e.ok(logical.ReadOperation, "keys/"+id, nil).Data; s["suspended"] != false {
		t.Fatalf("the known source suspended the key: %v", s)
	}
	e.clock.Add(time.Second)
	if acc, _, _ := e.report(entry("203.0.113.66", 3)); acc != 1 {
		t.Fatal("report refused")
	}
	e.wantCode(map[string]any{"api_key": d["api_key"], "source_ip": "192.0.2.10"}, wire.CodeSuspended)
	feed := e.ok(logical.ReadOperation, "revocations", nil).Data["events"].([]map[string]any)
	if !hasEvent(feed, id, eventSuspended) {
		t.Fatalf("the feed does not carry the suspension: %v", feed)
	}
	if err := e.b.flushUsage(context.Background(), e.storage, 0); err != nil {
		t.Fatal(err)
	}
	s := e.ok(logical.ReadOperation, "keys/"+id, nil).Data
	if s["suspended"] != true || s["use_count"] != uint64(34) || asJSON(s["anomalies"]) == "[]" {
		t.Fatalf("after the flush: suspended %v use_count %v anomalies %v", s["suspended"], s["use_count"], s["anomalies"])
	}
	if as := s["anomalies"].([]map[string]any); len(as) != 1 || as[0]["kind"] != anomalyKindNewSource {
		t.Fatalf("anomalies %v", as)
	}
}

// A rate above anomaly_rate from reported counts: each entry's count over
// the span it covers (counted_since to now, at least 10 s), summed over the
// 10 s window across reporters. With on_anomaly=flag it is recorded only.
func TestUsage_reportedRateAnomaly(t *testing.T) {
	e := newTestEnv(t)
	e.role("s", map[string]any{"environment": "prod", "on_anomaly": "suspend", "anomaly_rate": 10})
	e.role("f", map[string]any{"environment": "prod", "on_anomaly": "flag", "anomaly_rate": 10})
	entry := func(id, tk string, n int, span time.Duration) map[string]any {
		return map[string]any{"key_id": id, "count": n, "last_used_at": e.clock.Now().Format(time.RFC3339),
			"counted_since": e.clock.Now().Add(-span).Format(time.RFC3339), "ticket": tk}
	}
	d, _ := e.issue("s", nil)
	id := d["key_id"].(string)
	tk := e.ticketFor(d["api_key"])
	// 600 uses over a minute is 10/s: not above.
	e.report(entry(id, tk, 600, time.Minute))
	e.wantCode(map[string]any{"api_key": d["api_key"]}, wire.CodeValid)
	e.clock.Add(11 * time.Second) // a new window
	// Two reporters, 10 s each, in one window: 60 + 60 over 10 s is 12/s.
	e.report(entry(id, tk, 60, 10*time.Second))
	e.wantCode(map[string]any{"api_key": d["api_key"]}, wire.CodeValid)
	e.report(entry(id, tk, 60, 10*time.Second))
	e.wantCode(map[string]any{"api_key": d["api_key"]}, wire.CodeSuspended)

	f, _ := e.issue("f", nil)
	fid := f["key_id"].(string)
	ftk := e.ticketFor(f["api_key"])
	e.report(entry(fid, ftk, 500, 0)) // no span given in effect: 10 s, 50/s
	e.wantCode(map[string]any{"api_key": f["api_key"]}, wire.CodeValid)
	if as := e.ok(logical.ReadOperation, "keys/"+fid, nil).Data["anomalies"].([]map[string]any); len(as) != 1 || as[0]["kind"] != anomalyKindRate {
		t.Fatalf("anomalies %v", as)
	}
	e.badRequest(logical.UpdateOperation, "usage", map[string]any{"reports": []any{
		map[string]any{"key_id": fid, "count": 1, "last_used_at": e.clock.Now().Format(time.RFC3339), "counted_since": "then", "ticket": ftk},
	}}, "reports", "counted_since must be an RFC3339 time")
}

func hasEvent(evs []map[string]any, id, kind string) bool {
	for _, ev := range evs {
		if ev["key_id"] == id && ev["kind"] == kind {
			return true
		}
	}
	return false
}
