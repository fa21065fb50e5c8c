package vaultplugin_test

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/internal/vaulttest"
)

// processRSSMB reads a process's resident set (VmRSS) from /proc.
func processRSSMB(t *testing.T, pid int) float64 {
	t.Helper()
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status") // #nosec G304 -- a pid of this test's own server's plugin
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	t.Fatalf("no VmRSS for pid %d", pid)
	return 0
}

// TestIntegration_usageFloodStaysBounded: the reproduction of issue 22 item
// 6 on a real Vault: 60 reports of 10,000 made-up key_ids dated 1970 (the
// issue saw the plugin go from 78 to 266 MB in 33 s, and a real key's
// use_count never stored again). Every made-up entry is rejected at intake
// (its ticket does not verify: one HMAC, no storage read), the plugin's
// memory stays bounded, and the real key's usage, reported with its ticket
// inside the flood, is stored by the next flush (a plugin reload's clean
// flush; Vault's periodic run does the same about once a minute).
func TestIntegration_usageFloodStaysBounded(t *testing.T) {
	srv := vaulttest.Start(t)
	e := &engine{t: t, srv: srv, mount: srv.Mount(t)}
	e.vault("write", e.path("roles/r"), "environment=prod")
	real := e.issue("r")
	ticket, _ := e.wantCode(real.apiKey, "VALID")["usage_ticket"].(string)
	if ticket == "" {
		t.Fatal("no usage_ticket")
	}
	pids, err := srv.PluginPIDs()
	if err != nil || len(pids) != 1 {
		t.Fatalf("plugin processes: %v %v", pids, err)
	}
	before := processRSSMB(t, pids[0])

	const batches, perBatch = 60, 10_000
	fake := make([]byte, 52) // a ticket's raw length
	entries := make([]any, perBatch)
	started := time.Now()
	peak := before
	var series []float64 // RSS after every tenth batch
	realCount := 0
	for b := range batches {
		for i := range entries {
			if _, err := rand.Read(fake); err != nil {
				t.Fatal(err)
			}
			entries[i] = map[string]any{
				"key_id":       fmt.Sprintf("Fk%02d%08d", b, i),
				"count":        1,
				"last_used_at": "1970-01-01T00:00:00Z",
				"ticket":       base64.RawURLEncoding.EncodeToString(fake),
			}
		}
		// The real key's use, as a verifier reports it, in every tenth batch.
		if b%10 == 0 {
			entries[perBatch-1] = map[string]any{"key_id": real.keyID, "count": 5, "last_used_at": time.Now().UTC().Format(time.RFC3339), "ticket": ticket}
			realCount += 5
		}
		s, err := srv.Client.Logical().Write(e.path("usage"), map[string]any{"reports": entries})
		if err != nil {
			t.Fatalf("batch %d: %v", b, err)
		}
		wantAccepted := 0
		if b%10 == 0 {
			wantAccepted = 1
		}
		if fmt.Sprint(s.Data["accepted"]) != strconv.Itoa(wantAccepted) || fmt.Sprint(s.Data["rejected"]) != strconv.Itoa(perBatch-wantAccepted) {
			t.Fatalf("batch %d: %v", b, s.Data)
		}
		if b%10 == 9 {
			rss := processRSSMB(t, pids[0])
			series = append(series, rss)
			peak = max(peak, rss)
		}
	}
	flood := time.Since(started)
	after := processRSSMB(t, pids[0])
	peak = max(peak, after)
	t.Logf("plugin RSS: %.0f MB before, %.0f MB after %d x %d made-up entries in %s; after every 10 batches %.0f MB", before, after, batches, perBatch, flood.Round(time.Millisecond), series)
	// The growth is what decoding one report of 10,000 entries costs (Go's
	// heap then grows to about twice it), reached in the first batches; it
	// does not grow with the 600,000 entries sent. Nothing is kept for them.
	if peak-before > 96 || series[len(series)-1]-series[0] > 24 {
		t.Errorf("plugin RSS grew under the flood: %.0f MB before, then %.0f MB: memory is not bounded", before, series)
	}
	if p := e.vaultJSON("read", e.path("keys/"+real.keyID)).Data["use_count"]; fmt.Sprint(p) != strconv.Itoa(realCount+1) {
		t.Errorf("keys/<id> use_count before the flush %v, want %d pending", p, realCount+1)
	}

	// One flush stores it: the clean flush of a plugin reload.
	flushStart := time.Now()
	e.vault("plugin", "reload", "-plugin="+vaulttest.PluginName)
	uc := e.vaultJSON("read", e.path("keys/"+real.keyID)).Data["use_count"]
	if fmt.Sprint(uc) != strconv.Itoa(realCount+1) {
		t.Fatalf("use_count after one flush: %v, want %d (%d reported in the flood, 1 verify)", uc, realCount+1, realCount)
	}
	t.Logf("the real key's use_count %v stored by the first flush (%s)", uc, time.Since(flushStart).Round(time.Millisecond))
}
