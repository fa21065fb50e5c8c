package gateway

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/internal/vaulttest"
)

// TestIntegration_UsageReachesAnomalyDetection (issue 17 item 7): a
// flag_new_source + suspend key served from the gateway's cache is used
// from a new address (X-Forwarded-For from the trusted proxy, 127.0.0.1).
// The engine never sees that request; the gateway's next usage report
// carries the address, the engine suspends the key, the feed tells the
// gateway, and the gateway refuses the key (SUSPENDED, 403) within the
// report interval plus a poll. keys/<id> counts every request, cache hits
// included, and records the new_source anomaly.
func TestIntegration_UsageReachesAnomalyDetection(t *testing.T) {
	e := newEngine(t, vaulttest.Shared(t))
	e.srv.MustCLI(t, "write", e.mount+"/roles/dev-watched", "environment=dev", "scopes=read", "ttl=1h", "on_anomaly=suspend", "flag_new_source=true")
	const interval = time.Second
	gw := startGateway(t, e, e.token(t), "usage_interval = \"1s\"\n")
	k := e.issue(t, "dev-watched")
	valid := 0
	from := func(ip string) (int, string) {
		st, h, _ := get(t, gw.url+"/authz", map[string]string{
			"Authorization": "Bearer " + k.key, "X-Forwarded-For": ip,
			"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/v1/market/btc-usd",
		})
		if st == 200 {
			valid++
		}
		return st, first(h, "X-Cryptokeys-Code")
	}
	// The baseline: the engine verifies the key from 198.51.100.1, then
	// the cache answers.
	for range 5 {
		if st, code := from("198.51.100.1"); st != 200 {
			t.Fatalf("baseline: %d %s", st, code)
		}
	}
	// Let a report of the baseline go by: nothing is news yet.
	time.Sleep(interval + 500*time.Millisecond)
	if st, code := from("198.51.100.1"); st != 200 {
		t.Fatalf("after a report of known traffic: %d %s", st, code)
	}
	// A new source, answered from the cache: the engine does not see it.
	if st, code := from("203.0.113.66"); st != 200 {
		t.Fatalf("the new source was not answered from the cache: %d %s", st, code)
	}
	sent := time.Now()
	var st int
	var code string
	for time.Since(sent) < 10*time.Second {
		if st, code = from("198.51.100.1"); st != 200 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	took := time.Since(sent)
	if st != 403 || code != "SUSPENDED" {
		t.Fatalf("after the usage report: %d %s, want 403 SUSPENDED", st, code)
	}
	t.Logf("refused %s after the request from the new source; %d VALID answers", took, valid)
	// usage_interval, plus one poll (100 ms) and the request's own time.
	if limit := interval + 500*time.Millisecond; took > limit {
		t.Errorf("refused %s after the new source; want within %s", took, limit)
	}
	// Every VALID answer is counted once the last report is in: one
	// through the engine, the rest from the cache.
	read := func() map[string]any {
		s, err := e.srv.Client.Logical().Read(e.mount + "/keys/" + k.id)
		if err != nil {
			t.Fatal(err)
		}
		return s.Data
	}
	var n int64
	waitFor(t, 3*interval, "use_count to count the cache hits", func() bool {
		n, _ = read()["use_count"].(json.Number).Int64()
		return n == int64(valid)
	})
	s := struct{ Data map[string]any }{read()}
	if s.Data["suspended"] != true || s.Data["status"] != "suspended" {
		t.Errorf("keys/<id>: suspended %v status %v", s.Data["suspended"], s.Data["status"])
	}
	as, _ := json.Marshal(s.Data["anomalies"])
	if !json.Valid(as) || !strings.Contains(string(as), `"new_source"`) {
		t.Errorf("anomalies %s, want new_source", as)
	}
}
