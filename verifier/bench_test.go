package verifier

import (
	"strings"
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
	"github.com/hashicorp/go-hclog"
)

// cachedVerifier is a verifier whose cache already holds key, as after one
// engine round trip; benchmarks measure the local path only.
func cachedVerifier(b *testing.B, key string) *Verifier {
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
	k, err := keyformat.Parse(key)
	if err != nil {
		b.Fatal(err)
	}
	res := Result{Valid: true, Code: "VALID", KeyID: k.KeyID, Environment: "prod", Scopes: []string{"read", "trade"}, ExpiresAt: now.Add(time.Hour)}
	e := newEntry(res, facts{}, []string{"read"}, now.Add(time.Hour))
	e.prefix, e.environment, e.secretHash = k.Prefix, k.Environment, secretHash(k)
	v.cache.put(k.KeyID, e, v.cache.generation(), now)
	return v
}

func BenchmarkVerify_cached(b *testing.B) {
	k, _ := keyformat.Generate("ck", "prod")
	v := cachedVerifier(b, k.Raw())
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
