package keyformat_test

import (
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"testing"

	"github.com/cryptokeys/terraform-provider-cryptokeys/internal/leakforms"
	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
)

// Glue is what JSON logs, access logs and HTML put right before or after a
// value: escapes whose last byte is a letter or digit hide the key from
// Pattern's \b (`\nck_` reads as the word `nck_`, `%22ck_` as `22ck_`).
var glue = []struct{ name, s string }{
	{`\n`, `\n`}, {`\t`, `\t`}, {`\r`, `\r`}, {`\"`, `\"`}, {`\u0022`, `\u0022`},
	{`\x22`, `\x22`}, {`%20`, "%20"}, {`%3D`, "%3D"}, {`%22`, "%22"}, {`%0A`, "%0A"},
	{`%2522`, "%2522"}, {`+`, "+"}, {`&quot;`, "&quot;"}, {`&#34;`, "&#34;"},
	{`letters`, "Bearerxyz"}, {`digits`, "0042"}, {`underscore`, "API_"}, {`none`, ""},
}

// TestFindEscaped is the table of issue 18: a key glued by each escape, on
// the left, on the right and on both sides, inside a JSON log line and an
// access log line, is found exactly once, whole, at its own offset; a
// look-alike glued the same way is counted once and never called a key.
func TestFindEscaped(t *testing.T) {
	src := rand.NewChaCha8([32]byte{'e', 's', 'c'})
	for _, g := range glue {
		for _, pe := range [][2]string{{"ck", "prod"}, {"acme2", "staging"}} {
			k := mustGenerate(t, src, pe[0], pe[1]).Raw()
			bad := lookalike(t, mustGenerate(t, src, pe[0], pe[1]).Raw())
			for _, tmpl := range []string{
				`{"msg":"auth` + g.s + "\x01" + g.s + `done","n":1}`,
				`10.0.0.1 - - "GET /v1/ticker?api_key` + g.s + "\x01" + g.s + `x HTTP/1.1" 200`,
				g.s + "\x01",
				"\x01" + g.s,
			} {
				text := strings.Replace(tmpl, "\x01", k, 1)
				ms := keyformat.Find([]byte(text))
				if len(ms) != 1 || !ms[0].ChecksumOK || ms[0].Key.Raw() != k || ms[0].Offset != strings.Index(text, k) || ms[0].Len != len(k) {
					t.Errorf("glue %s, %s: Find(%q) = %+v, want the key once at %d", g.name, pe[0], redact(text, k), ms, strings.Index(text, k))
				}
				text = strings.Replace(tmpl, "\x01", bad, 1)
				ms = keyformat.Find([]byte(text))
				for _, m := range ms {
					if m.ChecksumOK || m.Key.Raw() != "" {
						t.Errorf("glue %s: a look-alike was called a key: %+v", g.name, m)
					}
				}
				// Pattern needs a word boundary; where the glue gives one,
				// the look-alike is counted, once. Glue of letters or
				// digits is no boundary: then it is not counted at all.
				if len(ms) > 1 || len(ms) == 1 && ms[0].Key.KeyID != bad[len(pe[0])+len(pe[1])+2:][:keyformat.KeyIDLen] {
					t.Errorf("glue %s: look-alike reported %d times: %+v", g.name, len(ms), ms)
				}
			}
		}
	}
}

func lookalike(t *testing.T, k string) string {
	t.Helper()
	bad := k[:len(k)-1] + string("0123456789"[(strings.IndexByte(keyformat.Alphabet, k[len(k)-1])+1)%10])
	if _, err := keyformat.Parse(bad); err != keyformat.ErrBadChecksum {
		t.Fatalf("test setup: look-alike: %v", err)
	}
	return bad
}

func redact(text, k string) string { return strings.ReplaceAll(text, k, "<key>") }

// TestFindEncoded: keys some of whose own characters are escaped (an
// encoder that escapes "_", a double-encoded URL, a JSON writer escaping
// everything, HTML) are found in the decoded view, once, at the offset and
// length of their encoded form.
func TestFindEncoded(t *testing.T) {
	src := rand.NewChaCha8([32]byte{'e', 'n', 'c'})
	k := mustGenerate(t, src, "ck", "prod").Raw()
	every := func(format string) string {
		var b strings.Builder
		for i := 0; i < len(k); i++ {
			fmt.Fprintf(&b, format, k[i])
		}
		return b.String()
	}
	for name, enc := range map[string]string{
		"%5F":            strings.ReplaceAll(k, "_", "%5F"),
		"%5f":            strings.ReplaceAll(k, "_", "%5f"),
		"%255F":          strings.ReplaceAll(k, "_", "%255F"),
		`\u005f`:         strings.ReplaceAll(k, "_", `\u005f`),
		`\u005F`:         strings.ReplaceAll(k, "_", `\u005F`),
		`\x5f`:           strings.ReplaceAll(k, "_", `\x5f`),
		"&#95;":          strings.ReplaceAll(k, "_", "&#95;"),
		"&#x5f;":         strings.ReplaceAll(k, "_", "&#x5f;"),
		"&#095;":         strings.ReplaceAll(k, "_", "&#095;"),
		"&lowbar;":       strings.ReplaceAll(k, "_", "&lowbar;"),
		"every byte %XX": every("%%%02X"),
		`every \u00XX`:   every(`\u%04x`),
		"first letter":   "%63" + k[1:],
		"last digit":     k[:len(k)-1] + fmt.Sprintf("%%%02X", k[len(k)-1]),
		"url.QueryEscape of a key with an underscore escaped": url.QueryEscape(strings.ReplaceAll(k, "_", "%5F")),
	} {
		for _, g := range glue {
			text := "token=" + g.s + enc + g.s + "&next=1"
			ms := keyformat.Find([]byte(text))
			at := strings.Index(text, enc)
			if len(ms) != 1 || !ms[0].ChecksumOK || ms[0].Key.Raw() != k || ms[0].Offset != at || ms[0].Len != len(enc) {
				t.Errorf("%s, glue %s: Find = %+v, want the key once at %d, %d bytes", name, g.name, ms, at, len(enc))
			}
		}
	}

	// A key found both as written and decoded is reported once; two
	// copies, one plain and one encoded, are two findings.
	for name, c := range map[string]struct {
		text string
		n    int
	}{
		"plain, after an escape of a letter": {"%5F" + k, 1},
		"plain after %41 (A), decoded too":   {"%41" + k, 1},
		"plain and encoded":                  {k + " " + strings.ReplaceAll(k, "_", "%5F"), 2},
		"twice plain":                        {k + "\n" + k, 2},
		"glued to itself":                    {k + k, 2},
		"after a longer run of letters":      {"abcdefghijklm" + k, 1},
	} {
		ms := keyformat.Find([]byte(c.text))
		if len(ms) != c.n {
			t.Errorf("%s: %d findings, want %d: %+v", name, len(ms), c.n, ms)
		}
		for _, m := range ms {
			if !m.ChecksumOK || m.Key.Raw() != k {
				t.Errorf("%s: %+v", name, m)
			}
		}
	}

	// The raw text reads "%61ck_prod_…" as the look-alike "ck_prod_…";
	// decoded it is the key "ack_prod_…": the key replaces the look-alike.
	ak := mustGenerate(t, src, "ack", "prod").Raw()
	if ms := keyformat.Find([]byte("x=%61" + ak[1:])); len(ms) != 1 || !ms[0].ChecksumOK || ms[0].Key.Raw() != ak || ms[0].Offset != 2 {
		t.Errorf("%%61ck_…: Find = %+v, want the key ack_… at 2", ms)
	}
}

// FuzzFind: whatever surrounds a key, Find reports it once, at its offset,
// and everything Find returns is consistent: in order, inside the text,
// without overlaps, keys that parse, look-alikes that carry no key.
func FuzzFind(f *testing.F) {
	f.Add(`{"msg":"\n`, `\n"}`, uint8(0))
	f.Add("GET /?k%3D", "%20HTTP", uint8(1))
	f.Add("%5F", "ck_prod_", uint8(0))
	f.Add(`\u00`, "", uint8(1))
	f.Add("&#x", ";", uint8(0))
	f.Add("abcdefghijklmnop_q_", "Z", uint8(1))
	keys := []string{
		"ck_prod_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefgh1xMzYh",
		mustGenerate(f, rand.NewChaCha8([32]byte{'f'}), "abcdefgh", "abcdefghijklmnop").Raw(),
	}
	f.Fuzz(func(t *testing.T, before, after string, which uint8) {
		k := keys[int(which)%len(keys)]
		text := before + k + after
		ms := keyformat.Find([]byte(text))
		found, prevEnd := false, 0
		for _, m := range ms {
			if m.Offset < prevEnd || m.Len <= 0 || m.Offset+m.Len > len(text) {
				t.Fatalf("match out of order, overlapping or outside the text: %+v (previous ended at %d)", m, prevEnd)
			}
			prevEnd = m.Offset + m.Len
			if m.ChecksumOK {
				p, err := keyformat.Parse(m.Key.Raw())
				if err != nil || !sameKey(p, m.Key) {
					t.Fatalf("a match that does not parse as itself: %v", err)
				}
				if m.Len == len(m.Key.Raw()) && text[m.Offset:m.Offset+m.Len] != m.Key.Raw() || m.Len < len(m.Key.Raw()) {
					t.Fatalf("key at %d is not the text there", m.Offset)
				}
				if m.Key.Raw() == k && m.Offset == len(before) {
					found = true
				}
			} else {
				if m.Key.Raw() != "" {
					t.Fatalf("look-alike carries a key")
				}
				pub := m.Key.Prefix + "_" + m.Key.Environment + "_" + m.Key.KeyID
				if !strings.HasPrefix(text[m.Offset:], pub) || m.Len != len(pub)-keyformat.KeyIDLen+keyformat.BodyLen {
					t.Fatalf("look-alike %+v is not the text at its offset", m)
				}
			}
		}
		if !found {
			t.Fatalf("the key between %q and %q was not found at %d: %+v", before, after, len(before), ms)
		}
	})
}

// TestFindLeakForms runs the table every key finder shares
// (internal/leakforms): each form of a key is found once, whole; a
// look-alike in a glued form is counted once, in an encoded form not at all.
func TestFindLeakForms(t *testing.T) {
	src := rand.NewChaCha8([32]byte{'l', 'f'})
	for _, f := range leakforms.All {
		k := mustGenerate(t, src, "ck", "prod").Raw()
		line := f.Write(k)
		ms := keyformat.Find([]byte(line))
		if len(ms) != 1 || !ms[0].ChecksumOK || ms[0].Key.Raw() != k {
			t.Errorf("%s: Find(%q) = %+v, want the key once", f.Name, redact(line, k), ms)
		}
		bad := lookalike(t, mustGenerate(t, src, "ck", "prod").Raw())
		want := map[bool]int{true: 1, false: 0}[f.Glue]
		ms = keyformat.Find([]byte(f.Write(bad)))
		if len(ms) != want || want == 1 && ms[0].ChecksumOK {
			t.Errorf("%s: look-alike: Find = %+v, want %d look-alike(s)", f.Name, ms, want)
		}
	}
}
