package verifier

import (
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
)

// liveHeapAfterGC is the heap still reachable after a full collection.
func liveHeapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// engineAnswer is a VALID answer shaped as the engine's: every field of
// verify's reply, a usage ticket of the engine's length (base64 of 52
// bytes) and the empty lists and map it sends.
func (r *rig) engineAnswer(keyID string) map[string]any {
	return map[string]any{
		"valid": true, "code": "VALID", "message": "", "key_id": keyID, "name": "", "role": "bench", "environment": "prod",
		"scopes": []any{"read", "trade"}, "key_type": "bearer", "labels": map[string]any{}, "allowed_cidrs": []any{},
		"rate_limit": 0, "rate_burst": 0,
		"expires_at":   r.clk.now().Add(24 * time.Hour).Format(time.RFC3339),
		"usage_ticket": strings.Repeat("t", 70),
	}
}

// The cache's memory per key: make bench holds 100,000 keys in the
// gateway (a 150 MB target for the process), so an entry must stay small.
// Measured as the live heap a few thousand engine answers add.
func TestCache_bytesPerEntry(t *testing.T) {
	const n = 10000
	r := newRig(t, "c", nil)
	keys := make([]string, n)
	for i := range keys {
		k, err := keyformat.Generate("ck", "prod")
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = k.Raw()
		r.eng.answer(keys[i], r.engineAnswer(k.KeyID))
	}
	// The requests the gateway would make: each key arrives in a header
	// value of its own ("Bearer <key>"), and is dropped after the request.
	before := liveHeapAfterGC()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				hdr := strings.Clone("Bearer " + keys[i])
				if res := r.verify(t, Request{APIKey: hdr[7:], Scopes: []string{"read"}, SourceIP: "10.0.0.1"}); !res.Valid {
					t.Errorf("verify: %s", res.Code)
				}
			}
		})
	}
	wg.Wait()
	after := liveHeapAfterGC()
	if got := r.v.Status().CacheEntries; got != n {
		t.Fatalf("%d keys cached, want %d", got, n)
	}
	per := float64(after-before) / n
	t.Logf("%.0f bytes of live heap per cached key", per)
	if per > entryBudget {
		t.Errorf("%.0f bytes of live heap per cached key, want at most %d", per, entryBudget)
	}
	runtime.KeepAlive(r)
}

// entryBudget is the live heap one cached key may take: about 600 bytes
// measured (an entry of 320, the engine's key_id and ticket strings, the
// sync.Map's nodes, the scopes), 862 before the entry stopped holding a
// whole Result, a substring of the request and an empty labels map.
// 100,000 keys then take about 60 MB of live heap; paced by gcpace the
// gateway stays well under 150 MB.
const entryBudget = 650

// The cache keeps no copy of the presented key: its map key and the
// entry's public parts are copies, not substrings of the request's key,
// so once the request is done the key's bytes can be collected (the cache
// holds no usable key, and no request buffer per key).
func TestCache_keepsNoReferenceToThePresentedKey(t *testing.T) {
	r := newRig(t, "c", nil)
	k, _ := keyformat.Generate("ck", "prod")
	r.eng.answer(k.Raw(), r.engineAnswer(k.KeyID))
	hdr := strings.Clone("Bearer " + k.Raw())
	collected := make(chan struct{})
	runtime.AddCleanup(unsafe.StringData(hdr), func(ch chan struct{}) { close(ch) }, collected) // #nosec G103 -- a cleanup on the string's bytes tells when nothing references them; nothing is read or written through the pointer
	if res := r.verify(t, Request{APIKey: hdr[7:], Scopes: []string{"read"}, SourceIP: "10.0.0.1"}); !res.Valid {
		t.Fatalf("verify: %s", res.Code)
	}
	hdr = ""
	deadline := time.Now().Add(5 * time.Second)
	for {
		runtime.GC()
		select {
		case <-collected:
			if !r.isCached(t, Request{APIKey: k.Raw(), Scopes: []string{"read"}}) {
				t.Fatal("the key is no longer cached")
			}
			return
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the presented key's bytes are still reachable after the request: the cache holds on to them")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
