package keyformat

import (
	"strings"
	"testing"
)

// Every byte value at every position of a body: the word-at-a-time check
// agrees with the alphabet table.
func TestIsBase62Body_everyByteAtEveryPosition(t *testing.T) {
	for pos := range BodyLen {
		for c := range 256 {
			b := []byte(strings.Repeat("A", BodyLen))
			b[pos] = byte(c)
			if got, want := isBase62Body(string(b)), base62[c] != 0; got != want {
				t.Fatalf("byte %#x at %d: %v, want %v", c, pos, got, want)
			}
		}
	}
	for range 10_000 {
		k, err := Generate("ck", "prod")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(k.Raw()); err != nil {
			t.Fatalf("a generated key does not parse: %v", err)
		}
	}
}

// Parse tells a wrong shape from a wrong checksum.
func TestParse_shapeAndChecksum(t *testing.T) {
	k, _ := Generate("ck", "prod")
	raw := k.Raw()
	next := Alphabet[(strings.IndexByte(Alphabet, raw[len(raw)-1])+1)%len(Alphabet)]
	for _, tc := range []struct {
		key  string
		want error
	}{
		{raw, nil},
		{raw[:len(raw)-1] + string(next), ErrBadChecksum},
		{"ck_prod_" + strings.Repeat("x", BodyLen), ErrBadChecksum},
		{"ck_prod_" + strings.Repeat("x", BodyLen-1) + "!", ErrMalformed},
		{"", ErrMalformed},
	} {
		if _, err := Parse(tc.key); err != tc.want {
			t.Fatalf("Parse(%.12s...): %v, want %v", tc.key, err, tc.want)
		}
	}
}
