package verifier

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
)

// forge returns a well-formed key with keyID and a secret of c's: anyone
// can compute the checksum.
func forge(keyID string, c byte) string {
	body := "ck_prod_" + keyID + strings.Repeat(string(c), keyformat.BodyLen-keyformat.KeyIDLen-keyformat.ChecksumLen)
	return body + keyformat.Checksum(body)
}

func (r *rig) calls() int64 { return r.eng.verifyCalls.Load() }

// A key the engine answered NOT_FOUND for is answered locally for 2 s, and
// only that very key: a real key with the same (public) key_id is still
// asked, and no other answer is remembered as NOT_FOUND.
func TestNotFound_cachedBrieflyForThatKeyOnly(t *testing.T) {
	r := newRig(t, "ab12cd34.5", nil)
	forged := forge("Forged000001", 'x')
	for i, wantCalls := range []int64{1, 1} {
		if res := r.verify(t, Request{APIKey: forged}); res.Code != "NOT_FOUND" {
			t.Fatalf("verify %d: %s", i, res.Code)
		}
		if r.calls() != wantCalls {
			t.Fatalf("verify %d: %d engine calls, want %d", i, r.calls(), wantCalls)
		}
	}
	r.wait(t, notFoundCacheTTL)
	r.verify(t, Request{APIKey: forged})
	if r.calls() != 2 {
		t.Fatalf("NOT_FOUND still cached after %s", notFoundCacheTTL)
	}

	// A real key whose key_id an attacker used with a wrong secret.
	realKey, realID := r.key(t, "t1")
	if res := r.verify(t, Request{APIKey: forge(realID, 'y')}); res.Code != "NOT_FOUND" {
		t.Fatal(res.Code)
	}
	if res := r.verify(t, Request{APIKey: realKey}); !res.Valid {
		t.Fatalf("a real key shadowed by a forged one with its key_id: %s", res.Code)
	}

	revoked, revokedID := r.key(t, "t2")
	r.eng.answer(revoked, map[string]any{"valid": false, "code": "REVOKED", "key_id": revokedID})
	before := r.calls()
	for range 2 {
		r.verify(t, Request{APIKey: revoked})
	}
	if r.calls() != before+2 {
		t.Fatal("a REVOKED answer was cached")
	}
}

func TestNotFound_cacheIsBounded(t *testing.T) {
	c := newNotFoundCache()
	for i := range notFoundCacheSize + 100 {
		c.put(fmt.Sprintf("K%011d", i), "ck", "prod", [32]byte{}, 0)
	}
	if n := c.len(); n > notFoundCacheSize {
		t.Fatalf("%d entries", n)
	}
}

// Each source may cause only NotFoundBurst NOT_FOUND answers (then
// NotFoundRate a second); past that its misses are answered RATE_LIMITED
// without asking the engine. Other sources, and keys already cached, are not
// affected; an IPv6 /64 is one source.
func TestNotFound_perSourceLimit(t *testing.T) {
	r := newRig(t, "ab12cd34.5", func(c *Config) { c.NotFoundBurst, c.NotFoundRate = 3, 1 })
	n := 0
	forged := func() string { n++; return forge(fmt.Sprintf("Forged%06d", n), 'x') }
	good, _ := r.key(t, "t1")
	r.cached(t, Request{APIKey: good, SourceIP: "198.51.100.7"})
	calls := r.calls()
	for range 3 {
		r.verify(t, Request{APIKey: forged(), SourceIP: "203.0.113.9"})
	}
	if r.calls() != calls+3 {
		t.Fatalf("within the burst: %d calls", r.calls()-calls)
	}
	if res := r.verify(t, Request{APIKey: forged(), SourceIP: "203.0.113.9"}); res.Code != "RATE_LIMITED" || res.RetryAfter <= 0 || res.RetryAfter > time.Second || r.calls() != calls+3 {
		t.Fatalf("past the burst: %s retry after %s, %d calls", res.Code, res.RetryAfter, r.calls()-calls)
	}
	if res := r.verify(t, Request{APIKey: good, SourceIP: "203.0.113.9"}); !res.Valid || !res.Cached {
		t.Fatalf("a cached key from a limited source: %s", res.Code)
	}
	r.verify(t, Request{APIKey: forged(), SourceIP: "198.51.100.7"})
	if r.calls() != calls+4 {
		t.Fatal("another source was limited")
	}
	r.wait(t, time.Second)
	r.verify(t, Request{APIKey: forged(), SourceIP: "203.0.113.9"})
	if r.calls() != calls+5 {
		t.Fatal("the bucket did not refill")
	}

	for i := range 4 {
		r.verify(t, Request{APIKey: forged(), SourceIP: fmt.Sprintf("2001:db8:1:2::%x", i+1)})
	}
	if r.calls() != calls+8 {
		t.Fatalf("one IPv6 /64 got %d answers, want 3", r.calls()-calls-5)
	}
}

func TestNotFound_sourceMapIsBounded(t *testing.T) {
	l := newSourceLimits(1, 1)
	now := time.Unix(1e9, 0)
	base := netip.MustParseAddr("10.0.0.0")
	a := base
	for range maxSources + 10 {
		a = a.Next()
		l.spend(a.String(), now)
	}
	if n := l.len(); n > maxSources {
		t.Fatalf("%d sources", n)
	}
	// New sources past the bound share one bucket: it is spent.
	if over, _ := l.exhausted("192.0.2.1", now); !over {
		t.Fatal("a new source past the bound is not limited")
	}
	// Once the buckets refill, a sweep makes room.
	l.spend("192.0.2.1", now.Add(2*time.Second))
	if n := l.len(); n != 1 {
		t.Fatalf("idle buckets not swept: %d sources", n)
	}
}
