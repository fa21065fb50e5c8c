package keyformat_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
)

// FuzzParse checks that Parse never panics, returns only its two sentinel
// errors, and that whatever it accepts is a key in the design's shape that
// re-serialises to exactly the input with a checksum that recomputes.
// Seeds live in testdata/fuzz/FuzzParse; `go test` runs them every time.
func FuzzParse(f *testing.F) {
	f.Add("ck_prod_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefgh1xMzYh")
	f.Add("ck_prod_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefgh1xMzYi")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := keyformat.Parse(s)
		if err != nil {
			if err != keyformat.ErrMalformed && err != keyformat.ErrBadChecksum {
				t.Fatalf("unexpected error %v", err)
			}
			if !sameKey(k, keyformat.Key{}) {
				t.Fatalf("non-zero key with error")
			}
			// The design regex and an independent checksum are the oracle
			// for what Parse rejects, too: the right shape is never called
			// malformed, and a checksum that recomputes is never refused.
			if wholeKeyRE.MatchString(s) {
				cut := len(s) - keyformat.ChecksumLen
				if err == keyformat.ErrMalformed {
					t.Fatalf("input in the design's shape called malformed")
				}
				if expectedChecksum(s[:cut]) == s[cut:] {
					t.Fatalf("key with a valid checksum refused")
				}
			}
			// Find must agree that a bad checksum is a look-alike and
			// never call it a key.
			for _, m := range keyformat.Find([]byte(s)) {
				if m.ChecksumOK && m.Offset == 0 && len(m.Key.Raw()) == len(s) {
					t.Fatalf("Find accepted what Parse rejected")
				}
			}
			return
		}
		if !wholeKeyRE.MatchString(s) {
			t.Fatalf("accepted input does not match the design regex")
		}
		if got := k.Prefix + "_" + k.Environment + "_" + k.KeyID + k.SecretPart(); got != s {
			t.Fatalf("parts do not re-serialise to the input")
		}
		if k.Raw() != s {
			t.Fatalf("Raw() differs from the input")
		}
		if !keyformat.ValidPrefix(k.Prefix) || !keyformat.ValidEnvironment(k.Environment) || !keyformat.ValidKeyID(k.KeyID) {
			t.Fatalf("accepted key has invalid parts: %v", k)
		}
		cut := len(s) - keyformat.ChecksumLen
		if keyformat.Checksum(s[:cut]) != s[cut:] || expectedChecksum(s[:cut]) != s[cut:] {
			t.Fatalf("checksum does not recompute")
		}
		if strings.Contains(k.String(), s[cut-keyformat.SecretLen:cut]) {
			t.Fatalf("String() shows the secret")
		}
		// The whole input is one key: Find must report exactly it.
		ms := keyformat.Find([]byte(s))
		if len(ms) != 1 || !ms[0].ChecksumOK || ms[0].Offset != 0 || !sameKey(ms[0].Key, k) {
			t.Fatalf("Find(accepted key) = %+v", ms)
		}
		// Any single-byte change inside the body must be caught (CRC32
		// detects every single-byte error), either as malformed or as a bad
		// checksum — never accepted.
		b := []byte(s)
		i := cut - 1
		b[i] ^= 0x01
		if _, err := keyformat.Parse(string(b)); !errors.Is(err, keyformat.ErrBadChecksum) && !errors.Is(err, keyformat.ErrMalformed) {
			t.Fatalf("a one-byte change was accepted")
		}
	})
}
