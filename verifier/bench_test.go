package verifier

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
	"github.com/hashicorp/go-hclog"
)

// cachedVerifier is a verifier whose cache already holds key, as after one
// engine round trip; benchmarks measure the local path only.
func cachedVerifier(b testing.TB, key string) *Verifier {
	// A fixed now (with its monotonic reading) and the default clocks'
	// staleness path: no clock is read, as before the monotonic clock.
	now := time.Now()
	v := &Verifier{
		cfg: Config{
			Now: func() time.Time { return now }, MaxStaleness: time.Hour, Environment: "prod",
			monotonic: func() time.Duration { return time.Since(now) },
		},
		logger:      hclog.NewNullLogger(),
		cache:       newCache(1000),
		notFound:    newNotFoundCache(),
		sources:     newSourceLimits(5, 20),
		usage:       map[string]*usageCount{},
		start:       now,
		monoFromNow: true,
	}
	if key != "" {
		cacheKey(b, v, key)
	}
	return v
}

// cacheKey caches key as VALID for read and trade (approved: read) for an
// hour, as an engine answer would.
func cacheKey(b testing.TB, v *Verifier, key string) {
	k, err := keyformat.Parse(key)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	res := Result{Valid: true, Code: "VALID", KeyID: k.KeyID, Environment: "prod", Scopes: []string{"read", "trade"}, ExpiresAt: now.Add(time.Hour)}
	e := newEntry(res, facts{}, []string{"read"}, now.Add(time.Hour))
	e.prefix, e.environment, e.secretHash = k.Prefix, k.Environment, secretHash(k)
	v.cache.put(k.KeyID, e, v.cache.generation(), now)
}

func BenchmarkVerify_cached(b *testing.B) {
	k, _ := keyformat.Generate("ck", "prod")
	v := cachedVerifier(b, k.Raw())
	benchCached(b, v, k)
}

// BenchmarkVerify_cachedClock is the cached verify as New sets it up: the
// wall clock read once per verify (time.Now, which also carries the
// monotonic reading staleness uses), as make bench measures it.
func BenchmarkVerify_cachedClock(b *testing.B) {
	k, _ := keyformat.Generate("ck", "prod")
	v := cachedVerifier(b, k.Raw())
	v.cfg.Now = time.Now
	benchCached(b, v, k)
}

// BenchmarkVerify_cachedParallel is the same on every core, each goroutine
// verifying its own key (a service serves many customers): what a lock or
// a shared cache line on the read path would cost shows here.
func BenchmarkVerify_cachedParallel(b *testing.B) {
	v := cachedVerifier(b, "")
	v.cfg.Now = time.Now
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		k, _ := keyformat.Generate("ck", "prod")
		cacheKey(b, v, k.Raw())
		req := Request{APIKey: k.Raw(), Scopes: []string{"read"}, SourceIP: "10.0.0.1"}
		for pb.Next() {
			if res, _ := v.Verify(context.Background(), req); !res.Valid {
				b.Error(res.Code)
				return
			}
		}
	})
}

func benchCached(b *testing.B, v *Verifier, k keyformat.Key) {
	req := Request{APIKey: k.Raw(), Scopes: []string{"read"}, SourceIP: "10.0.0.1"}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if res, _ := v.Verify(b.Context(), req); !res.Valid {
			b.Fatal(res.Code)
		}
	}
}

// BenchmarkVerify_malformed covers both ways a key is rejected offline: a
// wrong shape, and the costlier right shape with a failing checksum (the
// input make bench measures as local_malformed_rps).
func BenchmarkVerify_malformed(b *testing.B) {
	k, _ := keyformat.Generate("ck", "prod")
	v := cachedVerifier(b, k.Raw())
	shape := []byte(k.Raw())
	shape[len(shape)-1] = '!'
	checksum := "ck_prod_" + strings.Repeat("x", keyformat.BodyLen)
	for name, key := range map[string]string{"shape": string(shape), "checksum": checksum} {
		b.Run(name, func(b *testing.B) {
			req := Request{APIKey: key}
			b.ReportAllocs()
			for b.Loop() {
				if res, _ := v.Verify(b.Context(), req); res.Code != "MALFORMED" {
					b.Fatal(res.Code)
				}
			}
		})
	}
}
