package keyformat_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/big"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
)

// designRegex is copied from shared/design.md ("Key format") rather than
// taken from keyformat.Pattern, so that a drift of the published pattern away
// from the contract fails here.
const designRegex = `\b[a-z][a-z0-9]{1,7}_[a-z][a-z0-9]{0,15}_[0-9A-Za-z]{50}\b`

var wholeKeyRE = regexp.MustCompile(`^` + designRegex + `$`)

// counterReader yields 0, 1, 2, ... 255, 0, 1, ... forever, so generation is
// reproducible byte for byte.
type counterReader struct{ next byte }

func (c *counterReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = c.next
		c.next++
	}
	return len(p), nil
}

// crc32IEEE is a bitwise CRC-32 (reflected polynomial 0xEDB88320), written
// out so the expectation does not share code with hash/crc32.
func crc32IEEE(s string) uint32 {
	crc := ^uint32(0)
	for i := 0; i < len(s); i++ {
		crc ^= uint32(s[i])
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xEDB88320
			} else {
				crc >>= 1
			}
		}
	}
	return ^crc
}

// expectedChecksum encodes crc32IEEE(s) with math/big. big.Int's base-62
// digits are 0-9a-zA-Z, the design's alphabet is 0-9A-Za-z, so letters are
// case-swapped; then the result is left-padded to 6 with '0'.
func expectedChecksum(s string) string {
	digits := new(big.Int).SetUint64(uint64(crc32IEEE(s))).Text(62)
	swapped := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z':
			return r - 'A' + 'a'
		}
		return r
	}, digits)
	return strings.Repeat("0", keyformat.ChecksumLen-len(swapped)) + swapped
}

// sameKey compares keys by content, so the tests do not depend on how Key
// holds its secret (a pointer, say, would make == compare identity).
func sameKey(a, b keyformat.Key) bool {
	return a.Prefix == b.Prefix && a.Environment == b.Environment && a.KeyID == b.KeyID && a.Raw() == b.Raw()
}

func mustGenerate(t testing.TB, r io.Reader, prefix, env string) keyformat.Key {
	t.Helper()
	k, err := keyformat.GenerateFrom(r, prefix, env)
	if err != nil {
		t.Fatalf("GenerateFrom(%q, %q): %v", prefix, env, err)
	}
	return k
}

// withChecksum completes a key body with its correct checksum, so tests can
// build keys of any shape Parse should accept or reject for other reasons.
func withChecksum(s string) string { return s + expectedChecksum(s) }

func TestChecksumIndependent(t *testing.T) {
	fixed := map[string]string{
		"":         "000000", // CRC 0: all padding
		"a":        "4GEHKN", // CRC 0xE8B7BE43
		"ck_prod_": "3luuQJ",
	}
	for in, want := range fixed {
		if got := keyformat.Checksum(in); got != want {
			t.Errorf("Checksum(%q) = %q, want %q", in, got, want)
		}
	}

	rng := rand.New(rand.NewPCG(1, 2)) // #nosec G404 -- a fixed seed makes the inputs reproducible; no secret comes from it
	sawLeadingZero := false
	for i := range 20000 {
		b := make([]byte, rng.IntN(80))
		for j := range b {
			b[j] = byte(rng.UintN(256)) // #nosec G115 -- UintN(256) is below 256
		}
		s := string(b)
		want := expectedChecksum(s)
		got := keyformat.Checksum(s)
		if got != want {
			t.Fatalf("sample %d: Checksum = %q, independent expectation %q", i, got, want)
		}
		if len(got) != keyformat.ChecksumLen {
			t.Fatalf("checksum length %d", len(got))
		}
		sawLeadingZero = sawLeadingZero || got[0] == '0'
	}
	// About a fifth of CRCs are below 62^5; if none was seen the padding
	// path went untested.
	if !sawLeadingZero {
		t.Fatal("no sample exercised zero padding")
	}
}

func TestGenerateVectors(t *testing.T) {
	tests := []struct {
		name        string
		r           io.Reader
		prefix, env string
		want        string
		wantKeyID   string
	}{
		{
			name:   "counter bytes",
			r:      &counterReader{},
			prefix: "ck", env: "prod",
			want:      "ck_prod_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefgh1xMzYh",
			wantKeyID: "0123456789AB",
		},
		{
			// 255, 248 and 250 must be skipped; 61, 123, 185 and 247 all
			// reduce to 'z' and 62 to '0'. Then the counter supplies the rest.
			name: "rejection sampling",
			r: io.MultiReader(
				bytes.NewReader([]byte{255, 248, 250, 61, 62, 123, 185, 247}),
				&counterReader{},
			),
			prefix: "tk9", env: "staging",
			want:      "tk9_staging_z0zzz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabc3Xt3x9",
			wantKeyID: "z0zzz0123456",
		},
		{
			// io.ReadFull must cope with a reader that returns one byte at a time.
			name:   "one byte reads",
			r:      iotest.OneByteReader(&counterReader{}),
			prefix: "ck", env: "prod",
			want:      "ck_prod_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefgh1xMzYh",
			wantKeyID: "0123456789AB",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := mustGenerate(t, tt.r, tt.prefix, tt.env)
			if k.Raw() != tt.want {
				t.Errorf("key = %q, want %q", k.Raw(), tt.want)
			}
			if k.KeyID != tt.wantKeyID || k.Prefix != tt.prefix || k.Environment != tt.env {
				t.Errorf("parts = %q %q %q", k.Prefix, k.Environment, k.KeyID)
			}
			parsed, err := keyformat.Parse(tt.want)
			if err != nil || !sameKey(parsed, k) {
				t.Errorf("Parse(vector) = %v, %v; want the generated key", parsed, err)
			}
		})
	}
}

func TestGenerateShape(t *testing.T) {
	envs := []string{"dev", "staging", "prod", "live", "test", "e", "abcdefghijklmnop"}
	prefixes := []string{"ck", "x1", "abcdefgh"}
	for _, p := range prefixes {
		for _, e := range envs {
			for range 50 {
				k, err := keyformat.Generate(p, e)
				if err != nil {
					t.Fatalf("Generate(%q, %q): %v", p, e, err)
				}
				raw := k.Raw()
				if !wholeKeyRE.MatchString(raw) {
					t.Fatalf("generated key %s does not match the design regex", k)
				}
				if want := p + "_" + e + "_"; !strings.HasPrefix(raw, want) {
					t.Fatalf("key %s does not start with %q", k, want)
				}
				if len(raw) != len(p)+len(e)+2+keyformat.BodyLen {
					t.Fatalf("key %s has length %d", k, len(raw))
				}
				cut := len(raw) - keyformat.ChecksumLen
				if got, want := raw[cut:], expectedChecksum(raw[:cut]); got != want {
					t.Fatalf("key %s: checksum %q, want %q", k, got, want)
				}
				if !keyformat.ValidKeyID(k.KeyID) || raw[len(p)+len(e)+2:][:keyformat.KeyIDLen] != k.KeyID {
					t.Fatalf("key_id %q is not the 12 characters after the environment", k.KeyID)
				}
				if got := k.Prefix + "_" + k.Environment + "_" + k.KeyID + k.SecretPart(); got != raw {
					t.Fatalf("public parts + SecretPart do not reassemble the key")
				}
			}
		}
	}
}

func TestGenerateUnique(t *testing.T) {
	seen := map[string]bool{}
	ids := map[string]bool{}
	for range 5000 {
		k, err := keyformat.Generate("ck", "prod")
		if err != nil {
			t.Fatal(err)
		}
		if seen[k.Raw()] || ids[k.KeyID] {
			t.Fatalf("crypto/rand produced a repeated key or key_id: %s", k)
		}
		seen[k.Raw()] = true
		ids[k.KeyID] = true
	}
}

func TestGenerateRejectsBadLabels(t *testing.T) {
	bad := []struct{ prefix, env string }{
		{"", "prod"}, {"c", "prod"}, {"Ck", "prod"}, {"1k", "prod"}, {"abcdefghi", "prod"}, {"c_k", "prod"}, {"ck-", "prod"},
		{"ck", ""}, {"ck", "Prod"}, {"ck", "9prod"}, {"ck", "abcdefghijklmnopq"}, {"ck", "pr_od"}, {"ck", "prod "},
	}
	for _, b := range bad {
		if k, err := keyformat.Generate(b.prefix, b.env); err == nil {
			t.Errorf("Generate(%q, %q) = %s, want an error", b.prefix, b.env, k)
		}
	}
}

func TestGenerateReaderError(t *testing.T) {
	boom := errors.New("entropy source failed")
	_, err := keyformat.GenerateFrom(iotest.ErrReader(boom), "ck", "prod")
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want it to wrap the reader's error", err)
	}
	// A source that runs dry part way must fail, not return a short key.
	_, err = keyformat.GenerateFrom(bytes.NewReader(make([]byte, 10)), "ck", "prod")
	if err == nil {
		t.Fatal("a 10-byte source produced a key")
	}
}

func TestRandomBase62SkipsHighBytes(t *testing.T) {
	// Every byte value 248..255 must be dropped, and each of 0..247 kept.
	var src []byte
	for b := 248; b < 256; b++ {
		src = append(src, byte(b))
	}
	for b := range 248 {
		src = append(src, byte(b), byte(248+b%8))
	}
	src = append(src, bytes.Repeat([]byte{255}, 64)...) // padding for the 64-byte pool reads
	got, err := keyformat.RandomBase62(bytes.NewReader(src), 248)
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for b := range 248 {
		want.WriteByte(keyformat.Alphabet[b%62])
	}
	if got != want.String() {
		t.Fatalf("RandomBase62 = %q\nwant %q", got, want.String())
	}
}

// chiSquare62 returns Pearson's statistic for counts against a uniform
// distribution over the 62 digits.
func chiSquare62(counts *[62]int, n int) float64 {
	exp := float64(n) / 62
	var x2 float64
	for _, c := range counts {
		d := float64(c) - exp
		x2 += d * d / exp
	}
	return x2
}

func TestRandomBase62Uniform(t *testing.T) {
	// A fixed seed makes the statistic a constant: the test is reproducible
	// and cannot flake, yet any bias in the mapping moves it far.
	const n = 62 * 4000
	src := rand.NewChaCha8([32]byte{'c', 'k'})
	s, err := keyformat.RandomBase62(src, n)
	if err != nil {
		t.Fatal(err)
	}
	var counts [62]int
	for i := 0; i < len(s); i++ {
		d := strings.IndexByte(keyformat.Alphabet, s[i])
		if d < 0 {
			t.Fatalf("non-alphabet byte %q", s[i])
		}
		counts[d]++
	}
	// 61 degrees of freedom: the 99.99th percentile is about 111.
	const limit = 112.0
	if x2 := chiSquare62(&counts, n); x2 > limit {
		t.Fatalf("chi-square %.1f over %d draws exceeds %.0f: digits are not uniform", x2, n, limit)
	}

	// Control: the plain modulo mapping (no rejection) over the same kind
	// of source must fail the same threshold, or the check above proves
	// nothing.
	biasedSrc := rand.NewChaCha8([32]byte{'c', 'k'})
	var biased [62]int
	buf := make([]byte, n)
	_, _ = biasedSrc.Read(buf)
	for _, b := range buf {
		biased[b%62]++
	}
	if x2 := chiSquare62(&biased, n); x2 <= limit {
		t.Fatalf("control: modulo-biased digits gave chi-square %.1f <= %.0f; the test cannot detect bias", x2, limit)
	}
}

func validBody(r io.Reader) string {
	s, err := keyformat.RandomBase62(r, keyformat.KeyIDLen+keyformat.SecretLen)
	if err != nil {
		panic(err)
	}
	return s
}

func TestParseAccepts(t *testing.T) {
	src := &counterReader{}
	for _, pe := range [][2]string{{"ck", "prod"}, {"ab", "e"}, {"abcdefgh", "abcdefghijklmnop"}, {"z9", "x0"}} {
		s := withChecksum(pe[0] + "_" + pe[1] + "_" + validBody(src))
		k, err := keyformat.Parse(s)
		if err != nil {
			t.Fatalf("Parse(%s_%s_…) = %v", pe[0], pe[1], err)
		}
		if k.Prefix != pe[0] || k.Environment != pe[1] || k.Raw() != s || k.KeyID != s[len(pe[0])+len(pe[1])+2:][:12] {
			t.Fatalf("Parse returned wrong parts: %s", k)
		}
	}
	if len(withChecksum("abcdefgh_abcdefghijklmnop_"+validBody(src))) != keyformat.MaxKeyLen {
		t.Fatal("MaxKeyLen is not the length of the longest well-formed key")
	}
}

func TestParseRejects(t *testing.T) {
	src := &counterReader{}
	body := validBody(src)
	good := withChecksum("ck_prod_" + body)
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'a' {
			b[i] = 'b'
		} else {
			b[i] = 'a'
		}
		return string(b)
	}
	long := withChecksum("abcdefgh_abcdefghijklmnop_" + body)

	tests := []struct {
		name string
		in   string
		want error
	}{
		{"empty", "", keyformat.ErrMalformed},
		{"body only", body + expectedChecksum(body), keyformat.ErrMalformed},
		{"uppercase prefix", withChecksum("CK_prod_" + body), keyformat.ErrMalformed},
		{"digit-led prefix", withChecksum("1k_prod_" + body), keyformat.ErrMalformed},
		{"one-letter prefix", withChecksum("c_prod_" + body), keyformat.ErrMalformed},
		{"nine-letter prefix", withChecksum("abcdefghi_prod_" + body), keyformat.ErrMalformed},
		{"prefix with dash", withChecksum("c-k_prod_" + body), keyformat.ErrMalformed},
		{"empty environment", withChecksum("ck__" + body), keyformat.ErrMalformed},
		{"uppercase environment", withChecksum("ck_Prod_" + body), keyformat.ErrMalformed},
		{"digit-led environment", withChecksum("ck_1prod_" + body), keyformat.ErrMalformed},
		{"17-letter environment", withChecksum("ck_abcdefghijklmnopq_" + body), keyformat.ErrMalformed},
		{"three labels", withChecksum("ck_prod_eu_" + body[:len(body)-3]), keyformat.ErrMalformed},
		{"no second underscore", withChecksum("ckprod" + body), keyformat.ErrMalformed},
		{"body one short", withChecksum("ck_prod_" + body[1:]), keyformat.ErrMalformed},
		{"body one long", withChecksum("ck_prod_" + body + "x"), keyformat.ErrMalformed},
		{"checksum missing", "ck_prod_" + body, keyformat.ErrMalformed},
		{"dash in body", withChecksum("ck_prod_" + body[:10] + "-" + body[11:]), keyformat.ErrMalformed},
		{"underscore in body", withChecksum("ck_prod_" + body[:10] + "_" + body[11:]), keyformat.ErrMalformed},
		{"non-ASCII in body", withChecksum("ck_prod_" + body[:40] + "é" + body[42:]), keyformat.ErrMalformed},
		{"NUL in body", withChecksum("ck_prod_" + body[:10] + "\x00" + body[11:]), keyformat.ErrMalformed},
		{"leading space", " " + good, keyformat.ErrMalformed},
		{"trailing newline", good + "\n", keyformat.ErrMalformed},
		{"non-base62 checksum", good[:len(good)-1] + "+", keyformat.ErrMalformed},
		{"longest key plus one", long + "a", keyformat.ErrMalformed},
		{"overlong", strings.Repeat("a", 1<<20), keyformat.ErrMalformed},
		{"checksum digit changed", flip(good, len(good)-1), keyformat.ErrBadChecksum},
		{"secret changed", flip(good, 30), keyformat.ErrBadChecksum},
		{"key_id changed", flip(good, 9), keyformat.ErrBadChecksum},
		{"environment changed", "ck_test_" + good[len("ck_prod_"):], keyformat.ErrBadChecksum},
		{"prefix changed", "xk" + good[2:], keyformat.ErrBadChecksum},
		{"checksum zeroed", good[:len(good)-6] + "000000", keyformat.ErrBadChecksum},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := keyformat.Parse(tt.in)
			if err != tt.want { // sentinel identity, not errors.Is: Parse promises exactly these values
				t.Fatalf("Parse = (%v, %v), want %v", k, err, tt.want)
			}
			if !sameKey(k, keyformat.Key{}) {
				t.Fatalf("Parse returned a non-zero Key with an error: %v", k)
			}
		})
	}
}

func TestParseOverlongIsCheap(t *testing.T) {
	huge := strings.Repeat("ck_prod_", 1<<20)
	allocs := testing.AllocsPerRun(10, func() { _, _ = keyformat.Parse(huge) })
	if allocs != 0 {
		t.Fatalf("Parse allocated %.0f times on overlong input", allocs)
	}
}

func TestParseValidDoesNotAllocate(t *testing.T) {
	good := mustGenerate(t, &counterReader{}, "ck", "prod").Raw()
	bad := good[:len(good)-1] + "x"
	for name, s := range map[string]string{"valid": good, "bad checksum": bad, "garbage": "Bearer abc"} {
		if a := testing.AllocsPerRun(100, func() { _, _ = keyformat.Parse(s) }); a != 0 {
			t.Errorf("%s: Parse allocated %.0f times per call", name, a)
		}
	}
}

func TestSecretNeverFormatted(t *testing.T) {
	k := mustGenerate(t, rand.NewChaCha8([32]byte{1}), "ck", "prod")
	secret := k.SecretPart()
	if len(secret) != keyformat.SecretLen+keyformat.ChecksumLen || !strings.HasSuffix(k.Raw(), secret) {
		t.Fatalf("SecretPart has the wrong shape")
	}
	bareSecret := secret[:keyformat.SecretLen]
	m := keyformat.Find([]byte("x " + k.Raw()))[0]
	outputs := map[string]string{
		"String":           k.String(),
		"%v":               fmt.Sprintf("%v", k),
		"%+v":              fmt.Sprintf("%+v", k),
		"%#v":              fmt.Sprintf("%#v", k),
		"%s":               fmt.Sprintf("%s", k), //lint:ignore S1025 the test is what the %s verb prints
		"%q":               fmt.Sprintf("%q", k),
		"%x":               fmt.Sprintf("%x", k),
		"pointer %v":       fmt.Sprintf("%v", &k),
		"pointer %#v":      fmt.Sprintf("%#v", &k),
		"slice %v":         fmt.Sprintf("%v", []keyformat.Key{k}),
		"map %#v":          fmt.Sprintf("%#v", map[string]keyformat.Key{"k": k}),
		"Match %+v":        fmt.Sprintf("%+v", m),
		"Match %#v":        fmt.Sprintf("%#v", m),
		"exported field":   fmt.Sprintf("%+v", struct{ K keyformat.Key }{k}),
		"wrapped error":    fmt.Errorf("checking %v: %w", k, keyformat.ErrBadChecksum).Error(),
		"GenerateFrom err": errorString(keyformat.GenerateFrom(rand.NewChaCha8([32]byte{1}), "CK", "prod")),
	}
	for name, out := range outputs {
		if strings.Contains(out, bareSecret) {
			t.Errorf("%s prints the secret: %s", name, out)
		}
	}
	if want := "ck_prod_" + k.KeyID + "…"; k.String() != want {
		t.Errorf("String() = %q, want %q", k.String(), want)
	}
	if !strings.Contains(fmt.Sprintf("%#v", k), k.KeyID) {
		t.Errorf("%%#v should still name the key_id")
	}

	// Parse errors are the bare sentinels: they cannot carry the input.
	badKey := k.Raw()[:len(k.Raw())-1] + "x"
	if _, err := keyformat.Parse(badKey); strings.Contains(err.Error(), bareSecret) {
		t.Errorf("Parse error contains the secret: %v", err)
	}
}

func errorString(_ keyformat.Key, err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestValidators(t *testing.T) {
	for _, c := range []struct {
		f    func(string) bool
		name string
		ok   []string
		bad  []string
	}{
		{keyformat.ValidPrefix, "prefix", []string{"ck", "a1", "abcdefgh"}, []string{"", "a", "abcdefghi", "Ck", "1a", "c_", "cé"}},
		{keyformat.ValidEnvironment, "environment", []string{"p", "prod", "abcdefghijklmnop", "e2e"}, []string{"", "abcdefghijklmnopq", "Prod", "2e", "pro-d"}},
		{keyformat.ValidKeyID, "key_id", []string{"0123456789AB", "zzzzzzzzzzzz"}, []string{"", "0123456789A", "0123456789ABC", "0123456789A_", "0123456789A-"}},
	} {
		for _, s := range c.ok {
			if !c.f(s) {
				t.Errorf("%s %q rejected", c.name, s)
			}
		}
		for _, s := range c.bad {
			if c.f(s) {
				t.Errorf("%s %q accepted", c.name, s)
			}
		}
	}
}

func TestPatternIsTheDesignRegex(t *testing.T) {
	if keyformat.Pattern != designRegex {
		t.Fatalf("keyformat.Pattern = %q, design says %q", keyformat.Pattern, designRegex)
	}
}

func TestFind(t *testing.T) {
	src := rand.NewChaCha8([32]byte{'f', 'i', 'n', 'd'})
	k1 := mustGenerate(t, src, "ck", "prod")
	k2 := mustGenerate(t, src, "ck", "staging")
	k3 := mustGenerate(t, src, "acme2", "live")
	k4 := mustGenerate(t, src, "ck", "dev")
	lookalike := mustGenerate(t, src, "ck", "prod").Raw()
	lookalike = lookalike[:len(lookalike)-6] + "ABCDEF"
	if _, err := keyformat.Parse(lookalike); err != keyformat.ErrBadChecksum {
		t.Fatalf("test setup: look-alike should have a bad checksum, got %v", err)
	}
	body := validBody(src)

	// Near-misses: key-ish strings that the design regex must not match.
	nearMisses := []string{
		withChecksum("ck_prod_" + body[1:]),                    // body 49
		withChecksum("ck_prod_" + body + "Q"),                  // body 51
		withChecksum("CK_prod_" + body),                        // upper-case prefix
		withChecksum("abcdefghi_prod_" + body),                 // prefix too long
		withChecksum("ck_abcdefghijklmnopq_" + body),           // environment too long
		withChecksum("ck_prod_" + body[:20] + "-" + body[21:]), // dash in body
		"ck_prod_" + body,                                      // no checksum: body 44
	}

	var text strings.Builder
	text.WriteString("# config\n")
	at := func(s string) int { return text.Len() + strings.Index(s, "\x01") }
	type want struct {
		off int
		id  string
		ok  bool
	}
	var wants []want
	put := func(tmpl string, key string, id string, ok bool) {
		wants = append(wants, want{at(tmpl), id, ok})
		text.WriteString(strings.Replace(tmpl, "\x01", key, 1))
	}
	put("API_KEY=\x01\n", k1.Raw(), k1.KeyID, true)
	put(`{"api_key": "`+"\x01"+`", "n": 1}`+"\n", k2.Raw(), k2.KeyID, true)
	for _, nm := range nearMisses {
		text.WriteString("near " + nm + " miss\n")
	}
	// Glued to a word byte there is no word boundary, so Pattern misses
	// these; the checksum says they are keys all the same.
	glued := withChecksum("ck_prod_" + body)
	put("near 9\x01 miss\n", glued, body[:12], true)
	put("near xy_\x01 miss\n", glued, body[:12], true)
	put("curl -H 'Authorization: Bearer \x01' https://api\n", lookalike, lookalike[len("ck_prod_"):][:12], false)
	put("https://x.test/v1?key=\x01&x=1\n", k3.Raw(), k3.KeyID, true)
	put("\x01", k4.Raw(), k4.KeyID, true) // at the very end, no newline

	blob := []byte(text.String())
	got := keyformat.Find(blob)
	if len(got) != len(wants) {
		t.Fatalf("Find returned %d matches, want %d: %+v", len(got), len(wants), got)
	}
	for i, w := range wants {
		g := got[i]
		if g.Offset != w.off || g.Key.KeyID != w.id || g.ChecksumOK != w.ok {
			t.Errorf("match %d = {off %d id %s ok %v}, want {off %d id %s ok %v}", i, g.Offset, g.Key.KeyID, g.ChecksumOK, w.off, w.id, w.ok)
		}
		if w.ok {
			if !bytes.HasPrefix(blob[g.Offset:], []byte(g.Key.Raw())) {
				t.Errorf("match %d: Raw() is not the text at Offset", i)
			}
		} else if g.Key.Raw() != "" {
			// A look-alike is not a key; handing back its text invites
			// callers to treat it as one.
			t.Errorf("look-alike match carries Raw()")
		}
	}
	if keyformat.Find(nil) != nil || len(keyformat.Find([]byte(strings.Join(nearMisses, "\n")))) != 0 {
		t.Error("Find matched near-misses or empty input")
	}
}

func TestFindManyKeys(t *testing.T) {
	src := rand.NewChaCha8([32]byte{'m'})
	var text bytes.Buffer
	var ids []string
	for i := range 500 {
		k := mustGenerate(t, src, "ck", "prod")
		ids = append(ids, k.KeyID)
		fmt.Fprintf(&text, "line %d %s\n", i, k.Raw())
	}
	got := keyformat.Find(text.Bytes())
	if len(got) != len(ids) {
		t.Fatalf("found %d of %d keys", len(got), len(ids))
	}
	for i, m := range got {
		if !m.ChecksumOK || m.Key.KeyID != ids[i] {
			t.Fatalf("match %d: %+v, want key_id %s", i, m, ids[i])
		}
	}
}

func TestKeyInUnexportedFieldDoesNotLeak(t *testing.T) {
	k, err := keyformat.Generate("ck", "prod")
	if err != nil {
		t.Fatal(err)
	}
	type request struct {
		path string
		key  keyformat.Key
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%d"} {
		if out := fmt.Sprintf(verb, request{"/v1/orders", k}); strings.Contains(out, k.SecretPart()) {
			t.Fatalf("%s printed the secret: %s", verb, out)
		}
	}
}

// TestParse_everyByteAtEveryBodyPosition drives the word-at-a-time
// alphabet check through every byte value at every body position, next to
// both a valid neighbour and one with the high bit set.
func TestParse_everyByteAtEveryBodyPosition(t *testing.T) {
	valid := mustGenerate(t, rand.NewChaCha8([32]byte{'p'}), "ck", "prod").Raw()
	start := len(valid) - keyformat.BodyLen
	for pos := start; pos < len(valid); pos++ {
		for c := range 256 {
			b := []byte(valid)
			b[pos] = byte(c)
			_, err := keyformat.Parse(string(b))
			inAlphabet := strings.IndexByte(keyformat.Alphabet, byte(c)) >= 0
			if inAlphabet == (err == keyformat.ErrMalformed) {
				t.Fatalf("byte %#x at %d: err %v, in alphabet %v", c, pos, err, inAlphabet)
			}
			if pos+1 < len(b) {
				b[pos+1] = 0xff
				if _, err := keyformat.Parse(string(b)); err != keyformat.ErrMalformed {
					t.Fatalf("byte %#x at %d before 0xff: err %v", c, pos, err)
				}
			}
		}
	}
}
