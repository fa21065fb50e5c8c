package verifier

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

func (r *rig) reports(t *testing.T) [][]map[string]any {
	t.Helper()
	r.eng.mu.Lock()
	defer r.eng.mu.Unlock()
	return r.eng.usage
}

// Each usage report entry carries the newest usage ticket the engine gave
// for its key, also for uses of an entry replaced before the report.
func TestUsage_reportsCarryTheNewestTicket(t *testing.T) {
	r := newRig(t, "ab12cd34.5", nil)
	key, keyID := r.key(t, "ticket-1")
	req := Request{APIKey: key, SourceIP: "10.0.0.1"}
	r.cached(t, req) // one use counted by the engine, one here
	if err := r.v.ReportUsage(t.Context()); err != nil {
		t.Fatal(err)
	}
	r.isCached(t, req) // counted under ticket-1
	r.eng.answer(key, r.valid(keyID, "ticket-2"))
	r.wait(t, 61*time.Second)
	r.cached(t, req) // a fresh answer with ticket-2, one hit on it
	if err := r.v.ReportUsage(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := r.reports(t)
	if len(got) != 2 || len(got[0]) != 1 || len(got[1]) != 1 {
		t.Fatalf("reports %v", got)
	}
	for i, want := range []struct {
		ticket string
		count  string
	}{{"ticket-1", "1"}, {"ticket-2", "2"}} {
		e := got[i][0]
		if e["key_id"] != keyID || e["ticket"] != want.ticket || fmt.Sprint(e["count"]) != want.count {
			t.Fatalf("report %d: %v, want ticket %s count %s", i, e, want.ticket, want.count)
		}
	}
}

// More keys than one request may carry are sent in batches of at most
// 1,000 (the engine refuses more than 10,000 with a 400).
func TestUsage_batchesOfAtMost1000(t *testing.T) {
	r := newRig(t, "ab12cd34.5", nil)
	const keys = 2500
	r.v.usageMu.Lock()
	for i := range keys {
		r.v.addUse(fmt.Sprintf("Key%09d", i), 1, r.clk.now(), "", "ticket", 1)
	}
	r.v.usageMu.Unlock()
	if err := r.v.ReportUsage(t.Context()); err != nil {
		t.Fatal(err)
	}
	seen := map[any]bool{}
	batches := r.reports(t)
	for _, b := range batches {
		if len(b) > maxReportBatch {
			t.Fatalf("a batch of %d entries", len(b))
		}
		for _, e := range b {
			seen[e["key_id"]] = true
		}
	}
	if len(batches) != 3 || len(seen) != keys {
		t.Fatalf("%d batches, %d distinct keys", len(batches), len(seen))
	}
}

// A batch the engine refuses as a bad request is dropped (it would be
// refused forever), with a warning that holds no ticket; a batch that
// failed otherwise is sent again, with its ticket.
func TestUsage_refusedBatchDroppedFailedBatchKept(t *testing.T) {
	var logs syncBuffer
	logger := hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Debug})
	r := newRig(t, "ab12cd34.5", func(c *Config) { c.Logger = logger })
	key, keyID := r.key(t, "secret-ticket-value")
	r.cached(t, Request{APIKey: key})

	r.eng.setUsageStatus(400)
	if err := r.v.ReportUsage(t.Context()); err == nil {
		t.Fatal("a refused report returned no error")
	}
	r.eng.setUsageStatus(0)
	if err := r.v.ReportUsage(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := len(r.reports(t)); n != 1 {
		t.Fatalf("the refused batch was sent again (%d requests)", n)
	}
	if s := logs.String(); !strings.Contains(s, "dropping") || strings.Contains(s, "secret-ticket-value") || strings.Contains(s, key) {
		t.Fatalf("warning log: %s", s)
	}

	r.isCached(t, Request{APIKey: key})
	r.eng.setUsageStatus(503)
	if err := r.v.ReportUsage(t.Context()); err == nil {
		t.Fatal("a failed report returned no error")
	}
	r.eng.setUsageStatus(0)
	if err := r.v.ReportUsage(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := r.reports(t)
	if len(got) != 3 || len(got[2]) != 1 || got[2][0]["key_id"] != keyID || got[2][0]["ticket"] != "secret-ticket-value" {
		t.Fatalf("the failed batch was not sent again with its ticket: %v", got)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A key used from several addresses since the last report is reported
// with one entry per address (so the engine's new-source detection sees
// each), the counts adding up, the last address first; every entry says
// since when it was counted (the previous report).
func TestUsage_oneEntryPerSource(t *testing.T) {
	r := newRig(t, "ab12cd34.5", nil)
	key, keyID := r.key(t, "ticket")
	r.cached(t, Request{APIKey: key, SourceIP: "10.0.0.1"}) // the engine counted the first
	if err := r.v.ReportUsage(t.Context()); err != nil {
		t.Fatal(err)
	}
	reportedAt := r.clk.now()
	for _, ip := range []string{"10.0.0.1", "192.0.2.7", "10.0.0.1", "10.0.0.1", "203.0.113.9"} {
		r.clk.advance(time.Second)
		r.isCached(t, Request{APIKey: key, SourceIP: ip})
	}
	if err := r.v.ReportUsage(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := r.reports(t)
	if len(got) != 2 {
		t.Fatalf("reports %v", got)
	}
	var ips []string
	total := 0
	for _, e := range got[1] {
		if e["key_id"] != keyID || e["ticket"] != "ticket" || e["counted_since"] != reportedAt.UTC().Format(time.RFC3339Nano) {
			t.Fatalf("entry %v", e)
		}
		n, _ := strconv.Atoi(fmt.Sprint(e["count"]))
		total += n
		ips = append(ips, fmt.Sprint(e["source_ip"]))
	}
	if strings.Join(ips, ",") != "203.0.113.9,10.0.0.1,192.0.2.7" || total != 5 {
		t.Fatalf("entries %v: sources %v, %d uses; want the last source first, then the others newest first, 5 uses", got[1], ips, total)
	}
	if c := fmt.Sprint(got[1][0]["count"]); c != "3" {
		t.Fatalf("the last source counts %s, want 3", c)
	}
}
