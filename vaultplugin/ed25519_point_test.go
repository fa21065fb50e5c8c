package vaultplugin

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"strconv"
	"strings"
	"testing"

	"filippo.io/edwards25519"
	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
	"github.com/hashicorp/vault/sdk/logical"
)

// smallOrderEncodings are the encodings of the eight points of order
// dividing 8, as libsodium's blocklist has them (it compares with the sign
// bit of the last byte masked, so each line stands for two encodings), with
// y = p and y = p+1, the non-canonical spellings of y = 0 and y = 1.
var smallOrderEncodings = []string{
	"0000000000000000000000000000000000000000000000000000000000000000", // order 4
	"0100000000000000000000000000000000000000000000000000000000000000", // identity
	"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05", // order 8
	"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a", // order 8
	"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // order 2 (y = p-1)
	"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // y = p: non-canonical 0
	"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // y = p+1: non-canonical 1
}

// everySmallOrderEncoding is each blocklist line with the sign bit clear and set.
func everySmallOrderEncoding(t *testing.T) [][]byte {
	t.Helper()
	var out [][]byte
	for _, h := range smallOrderEncodings {
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != 32 {
			t.Fatalf("bad vector %s", h)
		}
		neg := append([]byte(nil), b...)
		neg[31] |= 0x80
		out = append(out, b, neg)
	}
	return out
}

func spkiPEM(t *testing.T, raw []byte) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(ed25519.PublicKey(raw))
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// nonCanonicalY returns encodings with y >= p of points on the curve that
// are not of small order: y+p for the small y that are on the curve.
func nonCanonicalY(t *testing.T) [][]byte {
	t.Helper()
	p := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	var out [][]byte
	for y := int64(2); y < 19; y++ {
		v := new(big.Int).Add(p, big.NewInt(y))
		be := v.FillBytes(make([]byte, 32))
		le := make([]byte, 32)
		for i := range be {
			le[i] = be[31-i]
		}
		if _, err := new(edwards25519.Point).SetBytes(le); err == nil {
			out = append(out, le)
		}
	}
	if len(out) == 0 {
		t.Fatal("no y in [p+2, p+18] is on the curve; pick another vector")
	}
	return out
}

// Finding 7: with the identity as public key, one fixed signature (R = the
// identity, S = 0) verifies for every message; the same holds, up to the
// cofactor, for the other small-order points. Every such key is refused.
func TestEd25519PublicKey_refusesSmallOrderAndNonCanonical(t *testing.T) {
	// The attack is real: Go's ed25519 accepts the forged signature.
	identity, _ := hex.DecodeString(smallOrderEncodings[1])
	forged := append(append([]byte(nil), identity...), make([]byte, 32)...)
	if !ed25519.Verify(identity, []byte("any message at all"), forged) {
		t.Fatal("expected the standard library to accept the universal signature for the identity key")
	}
	for _, raw := range everySmallOrderEncoding(t) {
		_, err := parseEd25519PublicKey(spkiPEM(t, raw))
		if err == nil {
			t.Errorf("small-order key %x accepted", raw)
			continue
		}
		if m := err.Error(); !strings.Contains(m, "small-order") && !strings.Contains(m, "non-canonical") && !strings.Contains(m, "not a point") {
			t.Errorf("key %x: unhelpful error %q", raw, m)
		}
	}
	for _, raw := range nonCanonicalY(t) {
		if _, err := parseEd25519PublicKey(spkiPEM(t, raw)); err == nil || !strings.Contains(err.Error(), "non-canonical") {
			t.Errorf("non-canonical key %x: got %v, want a non-canonical refusal", raw, err)
		}
	}
	for range 20 {
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		if _, err := parseEd25519PublicKey(spkiPEM(t, pub)); err != nil {
			t.Fatalf("a real key %x refused: %v", []byte(pub), err)
		}
	}
}

func TestCredsAndRotate_refuseSmallOrderPublicKeys(t *testing.T) {
	e := newTestEnv(t)
	e.ok(logical.UpdateOperation, "config", map[string]any{"signed_scopes": "withdraw"})
	e.role("ed", map[string]any{"environment": "prod", "key_type": "ed25519", "scopes": "withdraw"})
	own, _, _ := ed25519.GenerateKey(rand.Reader)
	d, _ := e.issue("ed", map[string]any{"public_key": spkiPEM(t, own)})
	rotate := "keys/" + d["key_id"].(string) + "/rotate"
	bad := append(everySmallOrderEncoding(t), nonCanonicalY(t)...)
	before := e.dump()
	for _, raw := range bad {
		pk := spkiPEM(t, raw)
		e.badRequest(logical.UpdateOperation, "creds/ed", map[string]any{"public_key": pk}, "public_key", "Ed25519")
		e.badRequest(logical.UpdateOperation, rotate, map[string]any{"public_key": pk}, "public_key", "Ed25519")
	}
	e.assertUnchanged(before)
}

// A record stored before the check (or written to storage by other means)
// with the identity as its public key never verifies a signature: the
// record's parsed key is refused when it is loaded.
func TestVerify_storedSmallOrderKeyNeverVerifies(t *testing.T) {
	e := newTestEnv(t)
	e.ok(logical.UpdateOperation, "config", map[string]any{"signed_scopes": "withdraw"})
	e.role("ed", map[string]any{"environment": "prod", "key_type": "ed25519", "scopes": "withdraw"})
	d, _ := e.issue("ed", nil)
	id := d["key_id"].(string)
	rec, err := e.b.loadKey(t.Context(), e.storage, id)
	if err != nil || rec == nil {
		t.Fatal(rec, err)
	}
	identity, _ := hex.DecodeString(smallOrderEncodings[1])
	rec.PublicKey, rec.pub = spkiPEM(t, identity), nil
	if err := e.b.putKey(t.Context(), e.storage, rec); err != nil {
		t.Fatal(err)
	}
	e.b.cache.drop(id)
	forged := base64.StdEncoding.EncodeToString(append(append([]byte(nil), identity...), make([]byte, 32)...))
	ts := strconv.FormatInt(e.clock.Now().UnixMilli(), 10)
	e.wantCode(map[string]any{
		"api_key": d["api_key"], "scopes": "withdraw", "timestamp": ts, "method": "POST", "path": "/withdraw", "body": "{}",
		"signature": forged,
	}, wire.CodeBadSignature)
}
