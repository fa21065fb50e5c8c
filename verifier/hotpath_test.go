package verifier

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
)

// The cached path allocates nothing: a hit (with scopes and a source
// address), a hit refused by its CIDRs, and MALFORMED of both kinds.
func TestVerify_cachedPathAllocatesNothing(t *testing.T) {
	k, _ := keyformat.Generate("ck", "prod")
	v := cachedVerifier(t, k.Raw())
	v.cfg.Now = time.Now
	fenced, _ := keyformat.Generate("ck", "prod")
	cacheKey(t, v, fenced.Raw())
	v.cache.get(fenced.KeyID).cidrs = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	shape := []byte(k.Raw())
	shape[len(shape)-1] = '!'
	for name, tc := range map[string]struct {
		req  Request
		code string
	}{
		"hit":                       {Request{APIKey: k.Raw(), Scopes: []string{"read"}, SourceIP: "10.0.0.1"}, wire.CodeValid},
		"hit, no scopes":            {Request{APIKey: k.Raw()}, wire.CodeValid},
		"hit, refused by its CIDRs": {Request{APIKey: fenced.Raw(), SourceIP: "192.0.2.1"}, wire.CodeIPNotAllowed},
		"wrong shape":               {Request{APIKey: string(shape)}, wire.CodeMalformed},
		"wrong checksum":            {Request{APIKey: "ck_prod_" + strings.Repeat("x", keyformat.BodyLen)}, wire.CodeMalformed},
		"other env":                 {Request{APIKey: forgeEnv("dev")}, wire.CodeEnvironmentMismatch},
	} {
		var res Result
		if allocs := testing.AllocsPerRun(1000, func() { res, _ = v.Verify(t.Context(), tc.req) }); allocs != 0 {
			t.Errorf("%s: %.1f allocations per verify", name, allocs)
		}
		if res.Code != tc.code {
			t.Errorf("%s: %s, want %s", name, res.Code, tc.code)
		}
	}
}

func forgeEnv(env string) string {
	body := "ck_" + env + "_" + strings.Repeat("y", keyformat.BodyLen-keyformat.ChecksumLen)
	return body + keyformat.Checksum(body)
}

// A hit skips the checksum only for the cached key itself: a key with the
// cached key_id and a bad checksum is MALFORMED, offline; one with a good
// checksum and another secret goes to the engine.
func TestVerify_cachedKeyIDWithAnotherSecret(t *testing.T) {
	r := newRig(t, "ab12cd34.5", nil)
	good, id := r.key(t, "t1")
	r.cached(t, Request{APIKey: good})
	calls := r.calls()
	badSum := []byte(good) // the last checksum digit moved on by one
	badSum[len(badSum)-1] = keyformat.Alphabet[(strings.IndexByte(keyformat.Alphabet, good[len(good)-1])+1)%len(keyformat.Alphabet)]
	if res := r.verify(t, Request{APIKey: string(badSum)}); res.Code != wire.CodeMalformed || r.calls() != calls {
		t.Fatalf("cached key_id, bad checksum: %s after %d engine calls", res.Code, r.calls()-calls)
	}
	other := forge(id, 'z')
	if res := r.verify(t, Request{APIKey: other}); res.Valid || res.Cached || r.calls() != calls+1 {
		t.Fatalf("cached key_id, another secret: %s cached=%v after %d engine calls", res.Code, res.Cached, r.calls()-calls)
	}
	if !r.isCached(t, Request{APIKey: good}) {
		t.Fatal("the cached key was dropped by another key's refusal")
	}
}
