package keyformat

import (
	"bytes"
	"hash/crc32"
	"slices"
	"sort"
	"unsafe"
)

// Match is one key-shaped string found in a text.
type Match struct {
	Key Key
	// Offset is the byte offset of the key in the text.
	Offset int
	// Len is how many bytes of the text the key spans: its own length, or
	// more when some of its characters were written as escapes (%5F,
	// \u005f, &#95;) and it was found in the decoded text.
	Len int
	// ChecksumOK is false for look-alikes whose checksum does not hold.
	ChecksumOK bool
}

// Find returns every key-shaped string in text, in order of Offset, each
// once. Look-alikes with a bad checksum are returned with ChecksumOK false
// (and no Raw) so callers can count them.
//
// Keys are found however they are glued into the text. Pattern's \b cannot
// see a key behind an escape — `\nck_prod_…` reads as the word
// `nck_prod_…`, `%22ck_prod_…` as `22ck_prod_…` — so Find does not use word
// boundaries: it anchors on the underscore before the 50-character body and
// tries every start of the prefix, longest first, until the checksum holds.
// The CRC, not the surroundings, says what a key is (a random string passes
// it about once in 5·10¹⁰). Then, if the text holds escapes that stand for
// key characters (%5F, %255F, \u005f, \x5f, &#95;, &#x5f;, &lowbar;), the
// text with those decoded is searched too, and keys found only there are
// added, at the offset of their encoded form.
//
// Find takes time linear in len(text) (each underscore costs at most a
// few dozen byte tests and eight CRCs of at most 76 bytes) and, besides
// what it returns, at most one copy of text for the decoded view.
func Find(text []byte) []Match {
	out := scan(text, nil)
	w, ok := decodedView(text)
	if !ok {
		return out
	}
	extra := scan(w.buf, &w)
	if len(extra) == 0 {
		return out
	}
	// Keep each key once: a key found in both views is the raw one; a key
	// found only once decoded replaces a look-alike it overlaps (the raw
	// text read a few of its characters as something else).
	var merged []Match
	drop := make([]bool, len(out))
	j := 0
	for _, m := range extra {
		for j < len(out) && out[j].Offset+out[j].Len <= m.Offset {
			j++
		}
		dup := false
		for k := j; k < len(out) && out[k].Offset < m.Offset+m.Len; k++ {
			if out[k].ChecksumOK {
				dup = true
			} else {
				drop[k] = true
			}
		}
		if !dup {
			merged = append(merged, m)
		}
	}
	for k, m := range out {
		if !drop[k] {
			merged = append(merged, m)
		}
	}
	slices.SortStableFunc(merged, func(a, b Match) int { return a.Offset - b.Offset })
	return merged
}

// Byte classes, one table lookup per test.
const (
	cLower = 1 << iota
	cDigit
	cUpper
	cUnder
	cHex
)

var class = func() (t [256]uint8) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] |= cLower
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] |= cUpper
	}
	for c := '0'; c <= '9'; c++ {
		t[c] |= cDigit | cHex
	}
	for _, c := range "abcdefABCDEF" {
		t[c] |= cHex
	}
	t['_'] |= cUnder
	return t
}()

func isLowerDigit(c byte) bool { return class[c]&(cLower|cDigit) != 0 }

// isWord is regexp's \w: what \b looks at.
func isWord(c byte) bool { return class[c]&(cLower|cDigit|cUpper|cUnder) != 0 }

func isHex(c byte) bool { return class[c]&cHex != 0 }

// scan finds the key-shaped strings of text, left to right, without
// overlaps. With w nil, text is the caller's and look-alikes are reported
// too; otherwise text is w's decoded view, only keys whose checksum holds
// are reported, and offsets are mapped back to the caller's text.
func scan(text []byte, w *view) []Match {
	var out []Match
	next := 0 // text before next belongs to an earlier match
	for i := 0; i < len(text); {
		j := bytes.IndexByte(text[i:], '_')
		if j < 0 {
			break
		}
		p := i + j // the underscore after the environment, if this is a key
		i = p + 1
		end := p + 1 + BodyLen
		if end > len(text) {
			break // every later underscore has even less room for a body
		}
		if p < 4 || !isLowerDigit(text[p-1]) {
			continue
		}
		// The environment runs back to the underscore ending the prefix.
		u1 := -1
		for e := p - 1; e >= max(p-1-MaxEnvironmentLen, 0); e-- {
			if c := text[e]; c == '_' {
				u1 = e
				break
			} else if !isLowerDigit(c) {
				break
			}
		}
		if u1 < 2 || class[text[u1+1]]&cLower == 0 {
			continue
		}
		body := unsafe.String(&text[p+1], BodyLen) // #nosec G103 -- read-only view of text[p+1:end], used only during this call
		if !isBase62Body(body) {
			continue
		}
		// The prefix is some tail of the run of [a-z0-9] before u1: try
		// each that starts with a letter, longest first.
		lo := u1
		for lo > 0 && u1-lo < MaxPrefixLen && isLowerDigit(text[lo-1]) {
			lo--
		}
		sum := checksumValue(body[KeyIDLen+SecretLen:])
		plain, escaped, found := -1, -1, false
		for s := max(lo, next); s <= u1-2; s++ {
			if class[text[s]]&cLower == 0 {
				continue
			}
			if uint64(crc32.ChecksumIEEE(text[s:end-ChecksumLen])) == sum {
				out = append(out, match(text, w, s, u1, p, end, true))
				next, i, found = end, end, true
				break
			}
			if plain < 0 && (s == 0 || !isWord(text[s-1])) {
				plain = s
			}
			if escaped < 0 && afterEscape(text, s) {
				escaped = s
			}
		}
		if found || w != nil || (end < len(text) && isWord(text[end])) {
			continue
		}
		// A look-alike is counted only where Pattern would have matched:
		// as a word, or right after an escape (then that start is the
		// likelier reading: `\nck_` is "ck", not "nck").
		s := plain
		if escaped >= 0 {
			s = escaped
		}
		if s >= 0 {
			out = append(out, match(text, w, s, u1, p, end, false))
			next, i = end, end
		}
	}
	return out
}

// match builds the Match for text[s:end], whose underscores are at u1 and p.
func match(text []byte, w *view, s, u1, p, end int, ok bool) Match {
	m := Match{Offset: s, Len: end - s, ChecksumOK: ok}
	if w != nil {
		m.Offset = w.orig(s)
		m.Len = w.orig(end) - m.Offset
	}
	if !ok {
		// A look-alike is not a key: it carries only the public parts.
		pub := string(text[s : p+1+KeyIDLen])
		m.Key = Key{Prefix: pub[:u1-s], Environment: pub[u1-s+1 : p-s], KeyID: pub[p-s+1:]}
		return m
	}
	raw := string(text[s:end])
	m.Key = withRaw(Key{Prefix: raw[:u1-s], Environment: raw[u1-s+1 : p-s], KeyID: raw[p-s+1 : p-s+1+KeyIDLen]}, raw)
	return m
}

// afterEscape reports whether text[:s] ends with an escape that a JSON
// string, a C-like log or a URL puts before a word: \n \t \r \b \f, \uXXXX,
// \xXX, %XX, %25XX. (Escapes ending in a non-word byte, such as \" or &quot;, are
// word boundaries already.)
func afterEscape(t []byte, s int) bool {
	switch {
	case s >= 2 && t[s-2] == '\\' && bytes.IndexByte([]byte("ntrbf"), t[s-1]) >= 0:
		return true
	case s >= 3 && t[s-3] == '%' && isHex(t[s-2]) && isHex(t[s-1]):
		return true
	case s >= 5 && t[s-5] == '%' && t[s-4] == '2' && t[s-3] == '5' && isHex(t[s-2]) && isHex(t[s-1]):
		return true // %25XX: URL-encoded twice
	case s >= 4 && t[s-4] == '\\' && t[s-3] == 'x' && isHex(t[s-2]) && isHex(t[s-1]):
		return true
	case s >= 6 && t[s-6] == '\\' && t[s-5] == 'u' && isHex(t[s-4]) && isHex(t[s-3]) && isHex(t[s-2]) && isHex(t[s-1]):
		return true
	}
	return false
}

// view is a text with the escapes that stand for key characters decoded.
// marks[k] says that byte marks[k].v of buf is byte marks[k].o of the
// original, with the bytes in between copied one for one.
type view struct {
	buf   []byte
	marks []mark
}

type mark struct{ v, o int }

// orig maps an offset in the view (a start, or an end one past a key) to
// the original text: an escaped character maps to where its escape starts.
func (w *view) orig(v int) int {
	k := sort.Search(len(w.marks), func(i int) bool { return w.marks[i].v > v }) - 1
	if k < 0 {
		return v
	}
	return w.marks[k].o + v - w.marks[k].v
}

// decodedView returns text with each escape that stands for a key
// character replaced by that character, and false when there is none (the
// common case, even in JSON logs full of \n and \": those stand for bytes
// no key holds, so the raw text already shows every boundary).
func decodedView(text []byte) (view, bool) {
	var w view
	last := 0
	for i := 0; i < len(text); i++ {
		if c := text[i]; c != '%' && c != '\\' && c != '&' {
			continue
		}
		c, n := decodeEscape(text[i:])
		if n == 0 {
			continue
		}
		if w.buf == nil {
			w.buf = make([]byte, 0, len(text))
		}
		w.buf = append(w.buf, text[last:i]...)
		w.buf = append(w.buf, c)
		last = i + n
		w.marks = append(w.marks, mark{v: len(w.buf), o: last})
		i = last - 1
	}
	if w.buf == nil {
		return w, false
	}
	w.buf = append(w.buf, text[last:]...)
	return w, true
}

// decodeEscape reads the escape at the start of t and returns the byte it
// stands for and its length, or n == 0 unless that byte can be part of a
// key ([0-9A-Za-z_]). Forms: %HH and %25HH (URL-encoded once or twice),
// \uHHHH and \xHH (JSON, C-like logs), &#D…; &#xH…; and &lowbar; (HTML).
func decodeEscape(t []byte) (c byte, n int) {
	v := -1
	switch {
	case t[0] == '%' && len(t) >= 5 && t[1] == '2' && t[2] == '5' && isHex(t[3]) && isHex(t[4]):
		v, n = hexVal(t[3:5]), 5
	case t[0] == '%' && len(t) >= 3 && isHex(t[1]) && isHex(t[2]):
		v, n = hexVal(t[1:3]), 3
	case t[0] == '\\' && len(t) >= 6 && t[1] == 'u' && isHex(t[2]) && isHex(t[3]) && isHex(t[4]) && isHex(t[5]):
		v, n = hexVal(t[2:6]), 6
	case t[0] == '\\' && len(t) >= 4 && t[1] == 'x' && isHex(t[2]) && isHex(t[3]):
		v, n = hexVal(t[2:4]), 4
	case t[0] == '&' && bytes.HasPrefix(t, []byte("&lowbar;")):
		v, n = '_', len("&lowbar;")
	case t[0] == '&' && len(t) >= 4 && t[1] == '#':
		// At most 6 digits (leading zeros included) and the semicolon.
		digits, base := t[2:], 10
		if digits[0] == 'x' || digits[0] == 'X' {
			digits, base = digits[1:], 16
		}
		k, val := 0, 0
		for ; k < len(digits) && k < 6; k++ {
			d := digits[k]
			if base == 10 && class[d]&cDigit == 0 || base == 16 && !isHex(d) {
				break
			}
			val = val*base + hexDigit(d)
		}
		if k > 0 && k < len(digits) && digits[k] == ';' {
			v, n = val, len(t)-len(digits)+k+1
		}
	}
	if n == 0 || v < 0 || v >= 0x80 || !isWord(byte(v)) {
		return 0, 0
	}
	return byte(v), n
}

func hexDigit(c byte) int {
	switch {
	case c <= '9':
		return int(c - '0')
	case c >= 'a':
		return int(c-'a') + 10
	default:
		return int(c-'A') + 10
	}
}

func hexVal(h []byte) int {
	v := 0
	for _, c := range h {
		v = v<<4 | hexDigit(c)
	}
	return v
}
