// Package keyformat generates and parses cryptokeys API keys.
//
// A key has one shape so that scanners can find it and every consumer can
// reject garbage without touching storage:
//
//	<prefix>_<environment>_<key_id><secret><checksum>
//
// key_id is 12 base62 characters, secret 32, checksum 6: the CRC32 (IEEE) of
// everything before it, written in base62, most significant digit first.
package keyformat

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"unsafe"
)

const (
	// Alphabet is the base62 alphabet, in digit order.
	Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

	KeyIDLen    = 12
	SecretLen   = 32
	ChecksumLen = 6
	// BodyLen is the length of the part after the second underscore.
	BodyLen = KeyIDLen + SecretLen + ChecksumLen

	// DefaultPrefix is the mount's key_prefix unless configured otherwise.
	DefaultPrefix = "ck"

	MaxPrefixLen      = 8
	MaxEnvironmentLen = 16
	// MaxKeyLen bounds any well-formed key; longer input is rejected unread.
	MaxKeyLen = MaxPrefixLen + 1 + MaxEnvironmentLen + 1 + BodyLen
)

// Pattern matches every well-formed key (checksum not checked). It is the
// pattern published for secret scanners.
const Pattern = `\b[a-z][a-z0-9]{1,7}_[a-z][a-z0-9]{0,15}_[0-9A-Za-z]{50}\b`

var (
	ErrMalformed   = errors.New("not a well-formed cryptokeys key")
	ErrBadChecksum = errors.New("checksum does not match")
)

// Key is a parsed key. Secret is the only sensitive field; String() and the
// %v verbs never print it.
type Key struct {
	Prefix      string
	Environment string
	KeyID       string
	// The whole key is kept as a pointer and a length, not a string: fmt
	// prints unexported fields by reflection, without calling String, so a
	// Key nested in another struct would otherwise print its secret.
	rawData *byte
	rawLen  int
}

// Raw returns the whole key, secret included.
func (k Key) Raw() string {
	if k.rawData == nil {
		return ""
	}
	return unsafe.String(k.rawData, k.rawLen) // #nosec G103 -- rawData/rawLen come only from withRaw, from a live string that stays reachable through them
}

func withRaw(k Key, raw string) Key {
	k.rawData, k.rawLen = unsafe.StringData(raw), len(raw) // #nosec G103 -- keeps the string's own pointer and length; Raw rebuilds the same string
	return k
}

// SecretPart returns the secret and checksum: everything after the key_id.
// Together with the public prefix, environment and key_id it is the key.
func (k Key) SecretPart() string {
	raw := k.Raw()
	if len(raw) < SecretLen+ChecksumLen {
		return ""
	}
	return raw[len(raw)-SecretLen-ChecksumLen:]
}

// String is safe to log: it shows the public parts only.
func (k Key) String() string {
	return k.Prefix + "_" + k.Environment + "_" + k.KeyID + "…"
}

// GoString keeps %#v as safe as %v.
func (k Key) GoString() string { return "keyformat.Key{" + k.String() + "}" }

// ValidPrefix reports whether p may be a key prefix: [a-z][a-z0-9]{1,7}.
func ValidPrefix(p string) bool { return validLabel(p, 2, MaxPrefixLen) }

// ValidEnvironment reports whether e may be an environment: [a-z][a-z0-9]{0,15}.
func ValidEnvironment(e string) bool { return validLabel(e, 1, MaxEnvironmentLen) }

// ValidKeyID reports whether id has the shape of a key_id (12 base62).
func ValidKeyID(id string) bool { return len(id) == KeyIDLen && isBase62(id) }

func validLabel(s string, minLen, maxLen int) bool {
	if len(s) < minLen || len(s) > maxLen || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// base62 maps each byte of the alphabet to its digit value plus one; zero
// marks a byte outside the alphabet.
var base62 = func() (t [256]uint8) {
	for i := 0; i < len(Alphabet); i++ {
		t[Alphabet[i]] = uint8(i + 1)
	}
	return t
}()

func isBase62(s string) bool {
	for i := 0; i < len(s); i++ {
		if base62[s[i]] == 0 {
			return false
		}
	}
	return true
}

// isBase62Body is isBase62 for the BodyLen bytes of a key, eight bytes at a
// time and without a branch per word: Parse runs on every request an API
// service receives, garbage included, and this check was most of its cost.
func isBase62Body(s string) bool {
	if len(s) != BodyLen {
		return false
	}
	// Words at 0, 8, ... 40 and one more at BodyLen-8 cover all 50 bytes.
	// Indexing a fixed-size array view of s lets the compiler drop every
	// bounds check: the length was checked once, above.
	b := (*[BodyLen]byte)(unsafe.Pointer(unsafe.StringData(s))) // #nosec G103 -- read-only view of s, whose length is BodyLen
	return base62Mask(load64(b, 0))&base62Mask(load64(b, 8))&base62Mask(load64(b, 16))&
		base62Mask(load64(b, 24))&base62Mask(load64(b, 32))&base62Mask(load64(b, 40))&
		base62Mask(load64(b, BodyLen-8))&highBits == highBits
}

// load64 reads 8 bytes of b from i, little-endian: one load.
func load64(b *[BodyLen]byte, i int) uint64 {
	return binary.LittleEndian.Uint64(b[i : i+8])
}

const (
	ones     = 0x0101010101010101
	highBits = 0x8080808080808080
)

// base62Mask sets the high bit of each byte of w that is in [0-9A-Za-z].
// For a byte x < 0x80, x+(0x80-lo) has its high bit set iff x >= lo, and
// x+(0x7f-hi) iff x > hi; neither sum carries into the next byte. Letters
// are tested once, on w with bit 0x20 cleared (a-z onto A-Z; no byte
// outside the letters lands in A-Z that way). A byte >= 0x80 may carry into
// its neighbour, but its own bit never comes out set, so the word is
// rejected; the final &^ w states that outright rather than leaving it to
// the arithmetic.
func base62Mask(w uint64) uint64 {
	digit := (w + ones*(0x80-'0')) &^ (w + ones*(0x7f-'9'))
	u := w &^ (ones * 0x20)
	letter := (u + ones*(0x80-'A')) &^ (u + ones*(0x7f-'Z'))
	return (digit | letter) &^ w
}

// checksumValue decodes a base62 checksum that has already passed
// isBase62. Six fixed digits are one-to-one with [0, 62^6), so the value
// equals a CRC exactly when the digits are its encoding; values of 2^32 and
// above equal none. Unrolled over a fixed-size view: no loop, no bounds
// check.
func checksumValue(s string) uint64 {
	if len(s) != ChecksumLen {
		return 1 << 63 // equals no CRC
	}
	d := (*[ChecksumLen]byte)(unsafe.Pointer(unsafe.StringData(s))) // #nosec G103 -- read-only view of s, whose length is ChecksumLen
	v := uint64(base62[d[0]]) - 1
	v = v*62 + uint64(base62[d[1]]) - 1
	v = v*62 + uint64(base62[d[2]]) - 1
	v = v*62 + uint64(base62[d[3]]) - 1
	v = v*62 + uint64(base62[d[4]]) - 1
	return v*62 + uint64(base62[d[5]]) - 1
}

// Checksum returns the 6-digit base62 CRC32 (IEEE) of s.
func Checksum(s string) string {
	d := checksumDigits(s)
	return string(d[:])
}

// checksumDigits computes the checksum without allocating: Parse runs on
// every request an API service receives, garbage included.
func checksumDigits(s string) [ChecksumLen]byte {
	// crc32 only reads its input, so it may look at the string's bytes in
	// place instead of copying them to the heap on every call.
	v := crc32.ChecksumIEEE(unsafe.Slice(unsafe.StringData(s), len(s))) // #nosec G103 -- read-only view of s; crc32 never writes or keeps its input
	var digits [ChecksumLen]byte
	for i := ChecksumLen - 1; i >= 0; i-- {
		digits[i] = Alphabet[v%62]
		v /= 62
	}
	return digits
}

func appendChecksum(dst []byte, s string) []byte {
	d := checksumDigits(s)
	return append(dst, d[:]...)
}

// Generate returns a new key with a random key_id and secret from crypto/rand.
func Generate(prefix, environment string) (Key, error) {
	return GenerateFrom(rand.Reader, prefix, environment)
}

// GenerateFrom is Generate with an explicit randomness source (tests only
// pass a deterministic one to check the codec; production uses crypto/rand).
func GenerateFrom(r io.Reader, prefix, environment string) (Key, error) {
	if !ValidPrefix(prefix) {
		return Key{}, fmt.Errorf("key prefix %q must match [a-z][a-z0-9]{1,7}", prefix)
	}
	if !ValidEnvironment(environment) {
		return Key{}, fmt.Errorf("environment %q must match [a-z][a-z0-9]{0,15}", environment)
	}
	buf := make([]byte, 0, len(prefix)+len(environment)+2+BodyLen)
	buf = append(buf, prefix...)
	buf = append(buf, '_')
	buf = append(buf, environment...)
	buf = append(buf, '_')
	idStart := len(buf)
	body, err := RandomBase62(r, KeyIDLen+SecretLen)
	if err != nil {
		return Key{}, err
	}
	buf = append(buf, body...)
	buf = appendChecksum(buf, string(buf))
	return withRaw(Key{
		Prefix:      prefix,
		Environment: environment,
		KeyID:       string(buf[idStart : idStart+KeyIDLen]),
	}, string(buf)), nil
}

// RandomBase62 returns n base62 characters drawn uniformly from r. Bytes at
// or above 248 (= 4*62) are rejected rather than reduced, so every digit is
// equally likely (no modulo bias).
func RandomBase62(r io.Reader, n int) (string, error) {
	out := make([]byte, 0, n)
	var pool [64]byte
	for len(out) < n {
		if _, err := io.ReadFull(r, pool[:]); err != nil {
			return "", fmt.Errorf("reading randomness: %w", err)
		}
		for _, b := range pool {
			if b >= 248 {
				continue
			}
			out = append(out, Alphabet[b%62])
			if len(out) == n {
				break
			}
		}
	}
	return string(out), nil
}

// minKeyLen is the shortest well-formed key: a 2-letter prefix and a
// 1-letter environment.
const minKeyLen = 2 + 1 + 1 + 1 + BodyLen

// Parse checks the shape and checksum of s without any I/O. The error is
// ErrMalformed or ErrBadChecksum and never contains s.
func Parse(s string) (Key, error) {
	if len(s) > MaxKeyLen || len(s) < minKeyLen {
		return Key{}, ErrMalformed
	}
	// The body is the last BodyLen bytes, so its length needs no search;
	// labels cannot hold '_', so the first '_' of the head ends the prefix.
	head, body := s[:len(s)-BodyLen], s[len(s)-BodyLen:]
	if head[len(head)-1] != '_' || !isBase62Body(body) {
		return Key{}, ErrMalformed
	}
	head = head[:len(head)-1]
	i := strings.IndexByte(head, '_')
	if i < 0 || !ValidPrefix(head[:i]) || !ValidEnvironment(head[i+1:]) {
		return Key{}, ErrMalformed
	}
	cut := len(s) - ChecksumLen
	// crc32 only reads its input, so it may look at the string's bytes in
	// place instead of copying them to the heap on every call.
	if uint64(crc32.ChecksumIEEE(unsafe.Slice(unsafe.StringData(s), cut))) != checksumValue(s[cut:]) { // #nosec G103 -- read-only view of s; crc32 never writes or keeps its input
		return Key{}, ErrBadChecksum
	}
	return withRaw(Key{Prefix: head[:i], Environment: head[i+1:], KeyID: body[:KeyIDLen]}, s), nil
}
