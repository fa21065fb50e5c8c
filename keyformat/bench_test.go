package keyformat_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
)

// Sinks keep results alive so the compiler cannot drop the calls; they are
// typed so that storing to them does not allocate and skew allocs/op.
var (
	sinkKey     keyformat.Key
	sinkMatches []keyformat.Match
)

func BenchmarkParseValid(b *testing.B) {
	s := mustGenerate(b, rand.NewChaCha8([32]byte{}), "ck", "prod").Raw()
	b.ReportAllocs()
	for b.Loop() {
		k, err := keyformat.Parse(s)
		if err != nil {
			b.Fatal(err)
		}
		sinkKey = k
	}
}

func BenchmarkParseMalformed(b *testing.B) {
	// Garbage of plausible length is the common rejected input (a wrong
	// header, a key of another vendor); a bad checksum costs a CRC too.
	valid := mustGenerate(b, rand.NewChaCha8([32]byte{}), "ck", "prod").Raw()
	inputs := map[string]string{
		"shape":    "sk_live_" + valid[8:len(valid)-3] + "+/=",
		"checksum": valid[:len(valid)-6] + "ABCDEF",
		"overlong": string(bytes.Repeat([]byte("A"), 4096)),
	}
	for name, s := range inputs {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, err := keyformat.Parse(s)
				if err == nil {
					b.Fatal("accepted")
				}
			}
		})
	}
}

func BenchmarkGenerate(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		k, err := keyformat.Generate("ck", "prod")
		if err != nil {
			b.Fatal(err)
		}
		sinkKey = k
	}
}

// BenchmarkFind64KiB is a source-like text with a few keys and look-alikes,
// the input of the scanner and of revoke/leaked.
func BenchmarkFind64KiB(b *testing.B) {
	src := rand.NewChaCha8([32]byte{'b'})
	var text bytes.Buffer
	for i := 0; text.Len() < 64<<10; i++ {
		switch i % 100 {
		case 17:
			fmt.Fprintf(&text, "\tapiKey := %q // live\n", mustGenerate(b, src, "ck", "prod").Raw())
		case 71:
			k := mustGenerate(b, src, "ck", "dev").Raw()
			fmt.Fprintf(&text, "export CK=%s\n", k[:len(k)-6]+"000000")
		default:
			fmt.Fprintf(&text, "func handler_%d(w http.ResponseWriter, r *http.Request) { log_request(r, %d) }\n", i, i*31)
		}
	}
	blob := text.Bytes()[:64<<10]
	if len(keyformat.Find(blob)) == 0 {
		b.Fatal("benchmark text holds no keys")
	}
	b.SetBytes(int64(len(blob)))
	b.ReportAllocs()
	for b.Loop() {
		sinkMatches = keyformat.Find(blob)
	}
}

// findBenchText is a JSON-lines log of about size bytes, the input
// revoke/leaked gets at its 4 MiB limit: escapes (\n, \t, \", \u0022) and
// URL-encoded access-log fields (%20, %3D, %22) everywhere, with a key glued
// to one of them now and then, and look-alikes.
func findBenchText(b *testing.B, size int) (text []byte, keys int) {
	src := rand.NewChaCha8([32]byte{'j'})
	var buf bytes.Buffer
	glue := []string{`\n`, `\t`, `\"`, `\u0022`, "%20", "%3D", "%22", " "}
	for i := 0; buf.Len() < size; i++ {
		switch i % 200 {
		case 17:
			k := mustGenerate(b, src, "ck", "prod").Raw()
			keys++
			fmt.Fprintf(&buf, `{"level":"info","msg":"request\n\theaders: Authorization=%s%s\n","n":%d}`+"\n", glue[i/200%len(glue)], k, i)
		case 71:
			k := mustGenerate(b, src, "ck", "dev").Raw()
			fmt.Fprintf(&buf, `127.0.0.1 - - "GET /v1/market?api_key%%3D%s HTTP/1.1" 200 %d`+"\n", k[:len(k)-6]+"000000", i)
		case 113:
			fmt.Fprintf(&buf, `127.0.0.1 - - "GET /v1/ticker?sym%%3DBTC_USD%%26q%%3D%%22x%%22%%20y HTTP/1.1" 200 %d`+"\n", i)
		default:
			fmt.Fprintf(&buf, `{"level":"debug","msg":"handler_%d: served \"/v1/orders\"\n\tuser_id=%d","latency_ms":%d}`+"\n", i, i*31, i%97)
		}
	}
	// The last line is cut at size; it holds no key (keys are on line 17
	// of every 200, far from the end).
	return buf.Bytes()[:size], keys
}

// BenchmarkFindLog4MiB is revoke/leaked's worst ordinary input: a 4 MiB log
// full of escapes (its size limit).
func BenchmarkFindLog4MiB(b *testing.B) {
	blob, keys := findBenchText(b, 4<<20)
	found := 0
	for _, m := range keyformat.Find(blob) {
		if m.ChecksumOK {
			found++
		}
	}
	if found != keys {
		b.Fatalf("Find found %d of the %d keys in the benchmark text", found, keys)
	}
	b.SetBytes(int64(len(blob)))
	b.ReportAllocs()
	for b.Loop() {
		sinkMatches = keyformat.Find(blob)
	}
}

// BenchmarkFindAdversarial4MiB is text built to make Find work hardest:
// every position a plausible key start (underscores between long base62
// runs and long lower-case runs before each), and escapes that decode to
// key characters, so that the decoded view is built too.
func BenchmarkFindAdversarial4MiB(b *testing.B) {
	unit := "%5Fabcdefghijklmnop_abcdefghijklmnop_" + strings.Repeat("a", keyformat.BodyLen) + " "
	blob := []byte(strings.Repeat(unit, 4<<20/len(unit)+1)[:4<<20])
	b.SetBytes(int64(len(blob)))
	b.ReportAllocs()
	for b.Loop() {
		sinkMatches = keyformat.Find(blob)
	}
}
