package keyformat_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
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
